//! The health sampler: one task per shop in this process takes a sample of
//! every region of the shop every [`PROBE_INTERVAL`] of cloud time and folds
//! it into that region's [`HealthState`]. Thin I/O around the pure
//! [`super::health`].
//!
//! The verdict memory lives here, in the process, not in the status (a
//! status write every probe would break "a converged reconcile writes
//! nothing"). When a verdict changes the sampler asks the controller to
//! reconcile, so that detection never waits for a periodic requeue; the
//! reconcile reads the verdicts with [`Sampler::view`] and writes
//! `status.health` only when they differ from what is stored.
//!
//! One sample of a region: the status of the shop's cluster and
//! replication group there, from the shared view of the region
//! (`DescribeDBClusters` and `DescribeReplicationGroups` of every resource
//! of the region, shared by every shop, and read in the round itself when a
//! data-plane probe fails: see [`crate::cloud::view`]; an unreachable or
//! throttled API is no data, never healthy and never down), TCP to the region's own cluster
//! endpoint, GET of its health URL if the spec lists one, and the
//! secondary's replication lag from CloudWatch (the RPO estimate of a
//! promotion, kept when AWS stops reporting it).
//!
//! Rounds keep one beat for every shop: they fall on a grid of
//! [`probe_interval`] from the first registration, so that the shops'
//! samplers ask about a region in the same round and share its read.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::jiff::Timestamp;
use tokio::task::AbortHandle;

use super::health::{
    Evidence, Health, HealthState, PROBE_INTERVAL, Sample, Thresholds, assess, cache_signal,
    database_signal,
};
use super::observe::LagSample;
use crate::api::{AuroraEngine, ShopRegion};
use crate::cloud::aurora::names as aurora_names;
use crate::cloud::elasticache::names as cache_names;
use crate::cloud::view::{Need, RegionObservation, SharedView};
use crate::cloud::{Cloud, real_delay};
use crate::probe::{Probe, Signal, endpoint_address};
use crate::telemetry::Metrics;

/// The shortest real interval between two rounds. An accelerated simulation
/// probes every `MIN_REAL_INTERVAL × speed` of cloud time when that is more
/// than [`PROBE_INTERVAL`]; the thresholds count rounds, so verdicts keep
/// their meaning (only coarser).
pub const MIN_REAL_INTERVAL: Duration = Duration::from_millis(100);

/// The cloud time between two rounds at `speed`.
pub fn probe_interval(speed: u32) -> Duration {
    PROBE_INTERVAL.max(MIN_REAL_INTERVAL * speed.max(1))
}

/// What the reconcile of one ShopRegion reads: the verdicts, last known lags
/// and probed endpoints of the regions it asks for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct View {
    pub health: BTreeMap<String, Health>,
    pub lag: BTreeMap<String, LagSample>,
    pub endpoints: BTreeMap<String, String>,
    /// This process has taken at least one round of samples of the shop
    /// (health and lag): until then what it knows is what the status said.
    pub warm: bool,
}

/// The per-shop samplers of one controller process.
pub struct Sampler {
    cloud: Arc<dyn Cloud>,
    probe: Arc<dyn Probe>,
    metrics: Arc<Metrics>,
    trigger: UnboundedSender<String>,
    shops: Mutex<HashMap<String, Shop>>,
    /// The shared observation of every region, which `cloud` reads through.
    view: Arc<SharedView>,
    /// Where the grid of rounds starts: the first registration.
    origin: Mutex<Option<Timestamp>>,
}

/// The start of the round `now` falls in: rounds are `interval` apart from
/// `origin` on.
pub fn round_of(origin: Timestamp, now: Timestamp, interval: Duration) -> Timestamp {
    let since = crate::clock::elapsed(origin, now);
    let step = interval.as_nanos().max(1);
    let rounds = since.as_nanos() / step;
    let offset = u64::try_from(rounds * step).unwrap_or(u64::MAX);
    crate::clock::after(origin, Duration::from_nanos(offset))
}

#[derive(Default)]
struct Shop {
    /// What each ShopRegion of the shop asked for, by object key.
    /// Boxed, as the regions' memories: a map's node holds room for eleven
    /// values whatever it holds, and a shop has three.
    registrations: BTreeMap<String, Box<Registration>>,
    regions: BTreeMap<String, Box<Memory>>,
    thresholds: Thresholds,
    interval: Option<Duration>,
    task: Option<AbortHandle>,
    /// A round of samples was folded in (see [`View::warm`]).
    warm: bool,
    /// The ShopRegions of the shop with a promotion under way (see
    /// [`Sampler::follow_promotion`]).
    promoting: BTreeSet<String>,
}

/// The parts of a ShopRegion the sampler needs, copied out of it: a
/// reference to the object itself kept the version of its last reconcile
/// alive beside the cache's newer one, a second copy of every ShopRegion
/// while a fleet's statuses change.
#[derive(Clone, Debug)]
struct Registration {
    /// `spec.failover.order`.
    order: Vec<String>,
    /// `spec.failover.healthChecks`, as (region, URL).
    health_urls: Vec<(String, String)>,
    engine: AuroraEngine,
    writer_region: Option<String>,
    /// Endpoints remembered in `status.health`, for a region whose API
    /// cannot be reached after an operator restart.
    endpoints: BTreeMap<String, String>,
}

#[derive(Default)]
struct Memory {
    state: HealthState,
    endpoint: Option<String>,
    lag: Option<LagSample>,
    /// When the lag was last asked for, answered or not.
    lag_asked_at: Option<Timestamp>,
    published: Option<Health>,
    /// The region's part in its global resources as last seen in AWS.
    roles: Option<Roles>,
}

/// What a region does in the shop's global resources, as AWS lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Roles {
    /// Its Aurora cluster takes the writes.
    database_writer: bool,
    /// Its Redis group is the Global Datastore's primary; `None` while the
    /// group is not listed.
    cache_primary: Option<bool>,
}

impl Roles {
    /// `None` when the listing failed or the region has no cluster: a
    /// region that cannot be read has not changed its role.
    fn of(observation: &RegionObservation, target: &Target) -> Option<Self> {
        let cluster = observation.cluster(&target.cluster_id).ok().flatten()?;
        let cache_primary = observation
            .group(&target.group_id)
            .ok()
            .flatten()
            .and_then(|g| g.global_replication_group.as_ref())
            .map(|g| g.is_primary);
        Some(Self {
            database_writer: cluster.writer.is_some(),
            cache_primary,
        })
    }
}

/// How often a secondary's replication lag is read. CloudWatch publishes
/// the lag metrics at one-minute resolution: reading them at every health
/// round (5 s) would cost twelve times the API calls (and GetMetricData is
/// billed per metric) for the same data points.
pub const LAG_READ_INTERVAL: Duration = Duration::from_secs(60);

/// One region to sample.
#[derive(Clone, Debug)]
struct Target {
    region: String,
    cluster_id: String,
    group_id: String,
    engine: AuroraEngine,
    endpoint: Option<String>,
    health_url: Option<String>,
    writer: bool,
}

struct Probed {
    region: String,
    sample: Sample,
    endpoint: Option<String>,
    lag: Option<LagSample>,
    roles: Option<Roles>,
}

/// Takes up what a previous operator process published in `region`'s
/// status, for the regions this process has not sampled yet: the health
/// verdicts (`status.health`) and this region's own last replication lag.
/// Without it a restart would publish "not yet observed" for every region,
/// write every status and post an Event per condition, and a failover
/// decision would wait for a fresh lag reading it may not get.
fn resume_from_status(shop: &mut Shop, region: &ShopRegion, now: Timestamp) {
    let Some(status) = region.status.as_ref() else {
        return;
    };
    for stored in &status.health {
        if shop.regions.contains_key(&stored.region) {
            continue;
        }
        let Some(state) = HealthState::resumed(stored, now) else {
            continue;
        };
        let published = state.health(now, &shop.thresholds);
        shop.regions.insert(
            stored.region.clone(),
            Box::new(Memory {
                state,
                endpoint: stored.endpoint.clone(),
                published: Some(published),
                ..Memory::default()
            }),
        );
    }
    let own_lag = status
        .failover
        .as_ref()
        .and_then(|f| f.last_known_lag.as_ref())
        .and_then(LagSample::from_reading);
    if let (Some(memory), Some(lag)) = (shop.regions.get_mut(&region.spec.region), own_lag)
        && memory.lag.is_none()
    {
        memory.lag = Some(lag);
    }
}

impl Sampler {
    /// `trigger` receives the shop's name whenever one of its verdicts
    /// changes.
    pub fn new(
        view: Arc<SharedView>,
        metrics: Arc<Metrics>,
        trigger: UnboundedSender<String>,
    ) -> Arc<Self> {
        let cloud: Arc<dyn Cloud> = view.clone();
        Arc::new(Self {
            probe: cloud.probe(),
            view,
            cloud,
            metrics,
            trigger,
            shops: Mutex::new(HashMap::new()),
            origin: Mutex::new(None),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Shop>> {
        // Every update leaves the map consistent before it could panic.
        self.shops.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records what `region` asks to be sampled, and starts its shop's
    /// sampler if it is not running. Cheap when nothing changed.
    pub fn register(self: &Arc<Self>, key: &str, region: &ShopRegion) {
        let registration = Registration {
            order: region.spec.failover.order.clone(),
            health_urls: region
                .spec
                .failover
                .health_checks
                .iter()
                .map(|c| (c.region.clone(), c.url.clone()))
                .collect(),
            engine: region.spec.database.engine,
            writer_region: region.status.as_ref().and_then(|s| s.writer_region.clone()),
            endpoints: region
                .status
                .iter()
                .flat_map(|s| &s.health)
                .filter_map(|h| Some((h.region.clone(), h.endpoint.clone()?)))
                .collect(),
        };
        let shop_name = region.spec.shop.clone();
        self.origin
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(|| self.cloud.clock().now());
        let mut shops = self.lock();
        let shop = shops.entry(shop_name.clone()).or_default();
        // The newest object always: an older one kept here would keep its
        // whole version alive beside the cache's.
        shop.registrations
            .insert(key.to_string(), Box::new(registration));
        resume_from_status(shop, region, self.cloud.clock().now());
        if shop.task.as_ref().is_none_or(AbortHandle::is_finished) {
            let task = tokio::spawn(self.clone().run(shop_name));
            shop.task = Some(task.abort_handle());
        }
    }

    /// Forgets a deleted ShopRegion; the last one of a shop stops its
    /// sampler and drops its verdicts.
    pub fn deregister(&self, key: &str, region: &ShopRegion) {
        let mut shops = self.lock();
        let Some(shop) = shops.get_mut(&region.spec.shop) else {
            return;
        };
        shop.registrations.remove(key);
        shop.promoting.remove(key);
        if shop.registrations.is_empty() {
            if let Some(task) = shop.task.take() {
                task.abort();
            }
            for sampled in shop.regions.keys() {
                self.metrics
                    .set_replication_lag(&region.spec.shop, sampled, None);
            }
            shops.remove(&region.spec.shop);
        }
    }

    /// Whether the ShopRegion `key` of `shop` has a promotion under way.
    /// While one of a shop's has, each round reads the regions in a listing
    /// of that round (shared by every shop on the grid) rather than one up
    /// to [`crate::cloud::view::MAX_AGE`] old, so that the role moving in AWS (the Aurora writer, the cache
    /// primary) reconciles the shop's ShopRegions within a round: the
    /// promotion then needs no reconcile of its own every round to notice
    /// it is done.
    pub fn follow_promotion(&self, shop: &str, key: &str, under_way: bool) {
        let mut shops = self.lock();
        let Some(shop) = shops.get_mut(shop) else {
            return;
        };
        if under_way {
            shop.promoting.insert(key.to_string());
        } else {
            shop.promoting.remove(key);
        }
    }

    fn promoting(&self, shop: &str) -> bool {
        self.lock()
            .get(shop)
            .is_some_and(|s| !s.promoting.is_empty())
    }

    /// Stops every sampler (the controller is stopping).
    pub fn shutdown(&self) {
        for (_, shop) in self.lock().drain() {
            if let Some(task) = shop.task {
                task.abort();
            }
        }
    }

    /// The verdicts at `now` of `regions` of `shop`; a region never sampled
    /// is `Unknown` (`NotYetObserved`).
    pub fn view(&self, shop: &str, regions: &[String], now: Timestamp) -> View {
        let shops = self.lock();
        let mut view = View::default();
        let Some(shop) = shops.get(shop) else {
            for region in regions {
                view.health.insert(region.clone(), Health::unknown());
            }
            return view;
        };
        view.warm = shop.warm;
        for region in regions {
            let memory = shop.regions.get(region);
            view.health.insert(
                region.clone(),
                memory.map_or_else(Health::unknown, |m| m.state.health(now, &shop.thresholds)),
            );
            if let Some(lag) = memory.and_then(|m| m.lag) {
                view.lag.insert(region.clone(), lag);
            }
            if let Some(endpoint) = memory.and_then(|m| m.endpoint.clone()).or_else(|| {
                shop.registrations
                    .values()
                    .find_map(|r| r.endpoints.get(region).cloned())
            }) {
                view.endpoints.insert(region.clone(), endpoint);
            }
        }
        view
    }

    async fn run(self: Arc<Self>, shop: String) {
        let mut speed = self.cloud.speed();
        loop {
            // The sampler lives as long as a controller listens to it.
            if self.trigger.is_closed() {
                return;
            }
            let Some(targets) = self.targets(&shop) else {
                return;
            };
            let interval = probe_interval(speed);
            let now = self.cloud.clock().now();
            let origin = *self
                .origin
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(now);
            let round = round_of(origin, now, interval);
            let lag_due = self.ask_for_lag(&shop, &targets, now);
            let need = if self.promoting(&shop) {
                Need::since(round)
            } else {
                Need::default()
            };
            let this = &self;
            let mut probed =
                futures::future::join_all(targets.iter().zip(lag_due).map(|(t, due)| async move {
                    // A due lag comes from the region's read of this minute
                    // (CloudWatch publishes one point a minute).
                    let lag = if due {
                        let minute = round_of(origin, now, LAG_READ_INTERVAL);
                        this.view
                            .database_lags(
                                &t.region,
                                &t.cluster_id,
                                || this.secondaries_in(&t.region),
                                Need::since(minute),
                            )
                            .await
                            .lag(&t.cluster_id)
                            .ok()
                            .flatten()
                    } else {
                        None
                    };
                    sample_region(this.probe.as_ref(), &this.view, t, lag, need, round, now).await
                }))
                .await;
            self.corroborate(&shop, &targets, &mut probed, round, now)
                .await;
            if self.fold(&shop, &targets, probed, interval, now) {
                // The controller is gone when nobody listens: nothing to do.
                let _ = self.trigger.unbounded_send(shop.clone());
            }
            // The next round is due `interval` of cloud time after this
            // one's start on the grid. Sleep in slices, so that a simulation
            // changing speed is followed at once.
            loop {
                let current = self.cloud.speed();
                if current != speed {
                    speed = current;
                    // Every wake the controller scheduled was computed at
                    // the old pace: let the reconciles compute them again.
                    let _ = self.trigger.unbounded_send(shop.clone());
                }
                let next = crate::clock::after(
                    round_of(origin, now, probe_interval(speed)),
                    probe_interval(speed),
                );
                let remaining = crate::clock::elapsed(self.cloud.clock().now(), next);
                if remaining.is_zero() {
                    break;
                }
                tokio::time::sleep(
                    real_delay(remaining, speed, Duration::from_millis(1)).min(MIN_REAL_INTERVAL),
                )
                .await;
            }
        }
    }

    /// When the writer's sample of this round is bad evidence, reads in the
    /// same round the replication lag of every region that replicated from
    /// it before: the second vantage point. Replication from a lost region
    /// stops, so the other regions see no fresh data point; a writer that
    /// only this controller cannot reach keeps replicating. Costs nothing
    /// while the writer looks well.
    async fn corroborate(
        &self,
        shop_name: &str,
        targets: &[Target],
        probed: &mut [Probed],
        round: Timestamp,
        now: Timestamp,
    ) {
        let Some(writer) = targets.iter().position(|t| t.writer) else {
            return;
        };
        if assess(&probed[writer].sample).evidence != Evidence::Bad {
            return;
        }
        let replicated: Vec<usize> = {
            let shops = self.lock();
            let Some(shop) = shops.get(shop_name) else {
                return;
            };
            (0..targets.len())
                .filter(|i| *i != writer)
                .filter(|i| {
                    shop.regions
                        .get(&targets[*i].region)
                        .is_some_and(|m| m.lag.is_some())
                })
                .collect()
        };
        // Read in this round, shared with every other shop whose writer
        // looks bad in it: a region outage hits them all at once.
        let reads = futures::future::join_all(replicated.iter().map(|i| {
            let target = &targets[*i];
            self.view.database_lags(
                &target.region,
                &target.cluster_id,
                || self.secondaries_in(&target.region),
                Need::since(round),
            )
        }))
        .await;
        let mut seen = Vec::new();
        for (i, read) in replicated.into_iter().zip(reads) {
            let region = &targets[i].region;
            if !read.covers(&targets[i].cluster_id) {
                // Asked for the first time in this round: no evidence.
                seen.push((
                    region.clone(),
                    Signal::NoData(format!("{region}: no replication data read yet")),
                ));
                continue;
            }
            seen.push(match read.lag(&targets[i].cluster_id) {
                Ok(Some(lag)) => {
                    probed[i].lag = Some(LagSample { lag, at: now });
                    (region.clone(), Signal::Up)
                }
                Ok(None) => (
                    region.clone(),
                    Signal::Down(format!("{region} has no fresh replication data point")),
                ),
                Err(error) => (region.clone(), Signal::NoData(format!("{region}: {error}"))),
            });
        }
        probed[writer].sample.vantage = Some(replication_seen(&seen));
    }

    /// The clusters of `region` that some shop samples as a secondary: the
    /// lags one read of the region answers for.
    fn secondaries_in(&self, region: &str) -> Vec<String> {
        let names: Vec<String> = self.lock().keys().cloned().collect();
        names
            .iter()
            .filter_map(|shop| self.targets(shop))
            .flatten()
            .filter(|t| t.region == region && !t.writer)
            .map(|t| t.cluster_id)
            .collect()
    }

    /// For each target, whether this round reads its lag (a secondary whose
    /// lag was last asked for [`LAG_READ_INTERVAL`] ago or never); marks
    /// those as asked.
    fn ask_for_lag(&self, shop_name: &str, targets: &[Target], now: Timestamp) -> Vec<bool> {
        let mut shops = self.lock();
        let Some(shop) = shops.get_mut(shop_name) else {
            return vec![false; targets.len()];
        };
        targets
            .iter()
            .map(|target| {
                let memory = shop.regions.entry(target.region.clone()).or_default();
                let due = !target.writer
                    && memory
                        .lag_asked_at
                        .is_none_or(|asked| crate::clock::elapsed(asked, now) >= LAG_READ_INTERVAL);
                if due {
                    memory.lag_asked_at = Some(now);
                }
                due
            })
            .collect()
    }

    /// Folds one round in; true when the shop's ShopRegions have news: a
    /// published verdict changed, or a region's role moved in AWS.
    fn fold(
        &self,
        shop_name: &str,
        targets: &[Target],
        probed: Vec<Probed>,
        interval: Duration,
        now: Timestamp,
    ) -> bool {
        let mut shops = self.lock();
        let Some(shop) = shops.get_mut(shop_name) else {
            return false;
        };
        // A round after a slower one (the simulation slowed down) still
        // judges the gap behind it by the slower pace.
        let paced = shop
            .interval
            .map_or(interval, |before| before.max(interval));
        shop.interval = Some(interval);
        shop.thresholds = Thresholds::for_interval(paced);
        let mut moved = false;
        for p in probed {
            let memory = shop.regions.entry(p.region).or_default();
            memory.state = memory.state.record(&p.sample, &shop.thresholds);
            if p.endpoint.is_some() {
                memory.endpoint = p.endpoint;
            }
            if p.lag.is_some() {
                memory.lag = p.lag;
            }
            if let Some(roles) = p.roles {
                moved |= memory.roles.is_some_and(|before| before != roles);
                memory.roles = Some(roles);
            }
        }
        let mut changed = moved;
        for memory in shop.regions.values_mut() {
            let health = memory.state.health(now, &shop.thresholds);
            if memory.published.as_ref() != Some(&health) {
                changed = true;
                memory.published = Some(health);
            }
        }
        for target in targets {
            let lag = shop
                .regions
                .get(&target.region)
                .and_then(|m| m.lag)
                .filter(|_| !target.writer)
                .map(|l| l.lag);
            self.metrics
                .set_replication_lag(shop_name, &target.region, lag);
        }
        shop.warm = true;
        changed
    }

    /// The regions of a shop to sample, from what its ShopRegions asked;
    /// `None` once none is registered. Deterministic whatever the order in
    /// which they registered: the first by object key leads.
    fn targets(&self, shop_name: &str) -> Option<Vec<Target>> {
        let shops = self.lock();
        let shop = shops.get(shop_name)?;
        let registrations: Vec<&Registration> =
            shop.registrations.values().map(AsRef::as_ref).collect();
        let first = registrations.first()?;
        let mut regions: Vec<String> = Vec::new();
        for registration in &registrations {
            for region in &registration.order {
                if !regions.contains(region) {
                    regions.push(region.clone());
                }
            }
        }
        let writer_region = registrations.iter().find_map(|r| r.writer_region.clone());
        Some(
            regions
                .into_iter()
                .map(|region| {
                    let health_url = registrations.iter().find_map(|r| {
                        r.health_urls
                            .iter()
                            .find(|(checked, _)| *checked == region)
                            .map(|(_, url)| url.clone())
                    });
                    let endpoint = shop
                        .regions
                        .get(&region)
                        .and_then(|m| m.endpoint.clone())
                        .or_else(|| {
                            registrations
                                .iter()
                                .find_map(|r| r.endpoints.get(&region).cloned())
                        });
                    Target {
                        cluster_id: aurora_names::cluster_id_of(shop_name, &region),
                        group_id: cache_names::replication_group_id_of(shop_name, &region),
                        engine: first.engine,
                        writer: writer_region.as_deref() == Some(region.as_str()),
                        region,
                        endpoint,
                        health_url,
                    }
                })
                .collect(),
        )
    }
}

/// Replication from the writer as the other regions saw it this round:
/// `Up` when one of them still receives it, `Down` when every one that
/// answered shows no fresh data point, `NoData` when none answered.
pub fn replication_seen(seen: &[(String, Signal)]) -> Signal {
    if seen.iter().any(|(_, s)| *s == Signal::Up) {
        return Signal::Up;
    }
    let details: Vec<&str> = seen.iter().filter_map(|(_, s)| s.detail()).collect();
    if seen.iter().any(|(_, s)| matches!(s, Signal::Down(_))) {
        Signal::Down(details.join("; "))
    } else if details.is_empty() {
        Signal::NoData("no other region replicated from it".into())
    } else {
        Signal::NoData(details.join("; "))
    }
}

/// One probe round of one region. AWS's view of the region comes from the
/// shared observation, up to [`crate::cloud::view::MAX_AGE`] old while the
/// data plane answers; when a probe fails, from a read of this round, so
/// that a lost region's API is seen unreachable in the round its endpoints
/// stop answering (detection waits for no older read). `need` asks for a
/// newer listing while a promotion is followed.
async fn sample_region(
    probe: &dyn Probe,
    view: &SharedView,
    target: &Target,
    lag: Option<Duration>,
    need: Need,
    round: Timestamp,
    now: Timestamp,
) -> Probed {
    let shared = view.observe(&target.region, need).await;
    let endpoint = region_endpoint(&shared, target);
    let (tcp, http) = tokio::join!(
        async {
            match &endpoint {
                Some(address) => probe.tcp(&target.region, address).await,
                None => Signal::NoData("no endpoint of the region's cluster is known yet".into()),
            }
        },
        async {
            match &target.health_url {
                Some(url) => Some(probe.http(&target.region, url).await),
                None => None,
            }
        }
    );
    let data_plane_failed = matches!(tcp, Signal::Down(_)) || matches!(http, Some(Signal::Down(_)));
    let observation = if data_plane_failed && shared.taken_at() < round {
        view.observe(&target.region, Need::since(round)).await
    } else {
        shared
    };
    let cluster = observation.cluster(&target.cluster_id);
    let group = observation.group(&target.group_id);
    let database = database_signal(cluster.map(|c| c.map(|c| &c.status)));
    let cache_state = cache_signal(group.map(|g| g.map(|g| &g.status)));
    Probed {
        region: target.region.clone(),
        sample: Sample {
            at: now,
            database,
            cache: Some(cache_state),
            endpoint: tcp,
            http,
            vantage: None,
        },
        endpoint,
        lag: lag.map(|lag| LagSample { lag, at: now }),
        roles: Roles::of(&observation, target),
    }
}

/// The region's own endpoint: the writer endpoint of the writer, the
/// reader endpoint of a secondary; remembered for when the API is down.
fn region_endpoint(observation: &RegionObservation, target: &Target) -> Option<String> {
    let cluster = observation.cluster(&target.cluster_id);
    let described = cluster.ok().flatten().and_then(|c| {
        if target.writer {
            c.writer_endpoint.clone()
        } else {
            c.reader_endpoint.clone()
        }
    });
    described
        .map(|host| endpoint_address(&host, target.engine))
        .or_else(|| target.endpoint.clone())
}

#[cfg(all(test, feature = "simulation"))]
mod tests {
    use super::*;
    use crate::api::HealthVerdict;
    use crate::api::fixtures::acme_region;
    use crate::clock::Clock;
    use crate::cloud::budget::RequestBudget;
    use crate::sim::{LiveSim, SimCloud, VirtualClock};

    /// A sampler reading a live simulated cloud at `speed`, and where it
    /// signals its shops' news (kept: a sampler nobody listens to stops).
    fn sampler_on(
        speed: u32,
    ) -> (
        Arc<LiveSim>,
        Arc<Sampler>,
        futures::channel::mpsc::UnboundedReceiver<String>,
    ) {
        let sim = Arc::new(LiveSim::start(
            SimCloud::new(VirtualClock::default()),
            speed,
        ));
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let sampler = Sampler::new(
            Arc::new(SharedView::new(sim.clone(), RequestBudget::default())),
            Arc::new(Metrics::default()),
            tx,
        );
        (sim, sampler, rx)
    }

    #[test]
    fn the_probe_interval_is_five_cloud_seconds_unless_the_simulation_is_too_fast_for_it() {
        assert_eq!(probe_interval(1), Duration::from_secs(5));
        assert_eq!(probe_interval(20), Duration::from_secs(5));
        assert_eq!(probe_interval(1200), Duration::from_secs(120));
    }

    #[tokio::test]
    async fn regions_never_sampled_are_unknown() {
        let (sim, sampler, _rx) = sampler_on(1);
        let view = sampler.view(
            "acme",
            &["us-east-1".to_string()],
            sim.cloud().clock().now(),
        );
        assert_eq!(view.health["us-east-1"], Health::unknown());
    }

    #[tokio::test(start_paused = true)]
    async fn replication_lag_is_read_once_a_minute_not_at_every_health_round() {
        use crate::sim::cloud::Op;
        let (sim, sampler, _rx) = sampler_on(1);
        sampler.register("shop/acme-eu-west-1", &Arc::new(acme_region("eu-west-1")));
        // 24 health rounds of 5 s; the three regions' lags are due at 0, 60
        // and 120 s only.
        tokio::time::sleep(Duration::from_secs(2 * 60 + 1)).await;
        let lag_reads = sim.cloud().call_count(Op::GetMetricData);
        assert_eq!(lag_reads, 3 * 3, "{lag_reads} lag reads in 24 rounds");
    }

    #[tokio::test]
    async fn a_region_without_a_cluster_becomes_unhealthy_and_the_change_is_signalled() {
        let (sim, sampler, mut rx) = sampler_on(100);
        let region = acme_region("eu-west-1");
        sampler.register("shop/acme-eu-west-1", &Arc::new(region.clone()));
        use futures::StreamExt;
        let signalled = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                rx.next().await.expect("the sampler signals");
                let view = sampler.view(
                    "acme",
                    &region.spec.failover.order,
                    sim.cloud().clock().now(),
                );
                if view
                    .health
                    .values()
                    .all(|h| h.verdict == HealthVerdict::Unhealthy)
                {
                    return view;
                }
            }
        })
        .await
        .expect("every region is judged unhealthy");
        assert_eq!(signalled.health["us-east-1"].reason, "DatabaseUnavailable");
        sampler.deregister("shop/acme-eu-west-1", &region);
        let view = sampler.view(
            "acme",
            &region.spec.failover.order,
            sim.cloud().clock().now(),
        );
        assert_eq!(
            view.health["us-east-1"],
            Health::unknown(),
            "the last ShopRegion gone, the verdicts go too"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hundred_shops_cost_the_aws_reads_of_one() {
        use crate::sim::cloud::Op;
        let (sim, sampler, _rx) = sampler_on(1);
        // The first shop starts the grid; the others register later, in
        // the middle of a round, and join its beat.
        sampler.register("shop/acme-eu-west-1", &Arc::new(acme_region("eu-west-1")));
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        for n in 1..100 {
            let mut region = acme_region("eu-west-1");
            region.spec.shop = format!("shop-{n}");
            sampler.register(
                &format!("shop/shop-{n}-eu-west-1"),
                &Arc::new(region.clone()),
            );
        }
        let before = (
            sim.cloud().call_count(Op::DescribeDBClusters),
            sim.cloud().call_count(Op::DescribeReplicationGroups),
        );
        // Twelve rounds of 5 s, from the next one on.
        tokio::time::sleep(Duration::from_millis(2_500 + 12 * 5_000 - 1)).await;
        let clusters = sim.cloud().call_count(Op::DescribeDBClusters) - before.0;
        let groups = sim.cloud().call_count(Op::DescribeReplicationGroups) - before.1;
        // One read of each of the three regions per shared read's age (at
        // 30 and 60 s), not one per shop nor one per round; one page each:
        // no cluster exists yet.
        assert_eq!(clusters, 3 * 2, "DescribeDBClusters");
        assert_eq!(groups, 3 * 2, "DescribeReplicationGroups");
    }

    #[tokio::test(start_paused = true)]
    async fn a_followed_promotion_reads_every_round_and_stops_when_it_ends() {
        use crate::sim::cloud::Op;
        let (sim, sampler, _rx) = sampler_on(1);
        let key = "shop/acme-eu-west-1";
        sampler.register(key, &Arc::new(acme_region("eu-west-1")));
        let clusters_in = |rounds: u64| {
            let sim = sim.clone();
            async move {
                let before = sim.cloud().call_count(Op::DescribeDBClusters);
                tokio::time::sleep(Duration::from_secs(5 * rounds)).await;
                sim.cloud().call_count(Op::DescribeDBClusters) - before
            }
        };
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        sampler.follow_promotion("acme", key, true);
        assert_eq!(
            clusters_in(12).await,
            3 * 12,
            "one listing of each region a round while the promotion is under way"
        );
        sampler.follow_promotion("acme", key, false);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(
            clusters_in(12).await <= 3 * 2,
            "at rest again: one listing per region every 30 s"
        );
    }

    #[tokio::test]
    async fn a_role_moving_in_aws_is_news_for_the_shop_without_a_verdict_change() {
        let (sim, sampler, _rx) = sampler_on(1);
        let region = acme_region("eu-west-1");
        sampler.register("shop/acme-eu-west-1", &Arc::new(region.clone()));
        let targets = sampler.targets("acme").expect("registered");
        let start = sim.cloud().clock().now();
        let round = |n: u64, writer: &str| {
            let at = crate::clock::after(start, Duration::from_secs(5 * n));
            let probed = targets
                .iter()
                .map(|t| Probed {
                    region: t.region.clone(),
                    sample: Sample {
                        at,
                        database: Signal::Up,
                        cache: Some(Signal::Up),
                        endpoint: Signal::Up,
                        http: None,
                        vantage: None,
                    },
                    endpoint: None,
                    lag: None,
                    roles: Some(Roles {
                        database_writer: t.region == writer,
                        cache_primary: Some(t.region == writer),
                    }),
                })
                .collect();
            sampler.fold("acme", &targets, probed, PROBE_INTERVAL, at)
        };
        let settled = (0..20).find(|&n| !round(n, "us-east-1") && !round(n, "us-east-1"));
        let settled = settled.expect("the verdicts settle while nothing moves");
        assert!(
            round(settled + 1, "eu-west-1"),
            "the writer moved to eu-west-1: the shop's ShopRegions are reconciled"
        );
        assert!(
            !round(settled + 2, "eu-west-1"),
            "the same roles again are no news"
        );
    }

    #[test]
    fn rounds_fall_on_one_grid_from_the_first_registration() {
        let origin = Timestamp::from_second(1_700_000_000).unwrap();
        let at = |ms: u64| crate::clock::after(origin, Duration::from_millis(ms));
        let five = Duration::from_secs(5);
        assert_eq!(round_of(origin, at(0), five), origin);
        assert_eq!(round_of(origin, at(4_999), five), origin);
        assert_eq!(round_of(origin, at(5_000), five), at(5_000));
        assert_eq!(round_of(origin, at(12_345), five), at(10_000));
        // Before the origin (a clock that moved back): the origin's round.
        assert_eq!(
            round_of(origin, Timestamp::from_second(1_600_000_000).unwrap(), five),
            origin
        );
    }
}
