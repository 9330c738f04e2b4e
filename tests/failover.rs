//! Failover end to end: the real controller, through the real kube-rs
//! client, on the in-process API server and the simulated cloud.
//!
//! The fleet is provisioned at high speed (hours of AWS work in seconds),
//! then the simulation slows down for the failover itself, so that the
//! controller's own latency is small against cloud time and the turns of
//! the decision engine (30 s each) are hundreds of real milliseconds long.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use common::{Harness, condition, sample};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::jiff::{Timestamp, ToSpan};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use shopfleet::api::conditions::types;
use shopfleet::api::{
    FailoverKind, FailoverMode, FailoverResult, FailoverStep, HealthVerdict, RegionRole, ShopRegion,
};
use shopfleet::clock::Clock;
use shopfleet::cloud::aurora::port::{
    AuroraPort, Cluster, CreateClusterRequest, CreateGlobalClusterRequest, CreateInstanceRequest,
    DeleteClusterRequest, GlobalCluster, Instance, ModifyClusterRequest,
    ModifyGlobalClusterRequest, ModifyInstanceRequest, RegionInstance, SubnetGroup, Tags,
};
use shopfleet::cloud::elasticache::ElastiCachePort;
use shopfleet::cloud::{Cloud, CloudError};
use shopfleet::failover::sampler::probe_interval;
use shopfleet::probe::{Probe, Signal};
use shopfleet::sim::{Fault, LiveSim, Op, SimCloud, VirtualClock};
use shopfleet::workload::plan_capacity;

const US: &str = "us-east-1";
const EU: &str = "eu-west-1";
const AP: &str = "ap-northeast-1";
const REGIONS: [&str; 3] = [US, EU, AP];
const GLOBAL: &str = "acme-global";

/// Provisioning: 50 cloud minutes per real second.
const PROVISIONING_SPEED: u32 = 3000;
/// Detection: a 30 s turn lasts 1.5 real seconds. The second in which the
/// writer is declared lost runs at real time.
const MEASURING_SPEED: u32 = 20;
/// Everything else about a failover: AWS's minute-long promotions in a
/// second, turns still 500 ms long.
const FAILOVER_SPEED: u32 = 60;
/// Once no region's turn is at stake (a switchover, a promotion under way,
/// a wait in which nothing may happen): AWS's two minutes in 0.4 s.
const UNHURRIED_SPEED: u32 = 300;

fn name(region: &str) -> String {
    format!("acme-{region}")
}

/// The simulated cloud, seen through a spy on every Aurora port: it checks
/// that an intent is stored before AWS receives a promotion, and can stage
/// a race or a crash at that very moment.
struct Spy {
    sim: Arc<LiveSim>,
    client: OnceLock<Client>,
    namespace: OnceLock<String>,
    /// Per promotion call: the target region, and whether its ShopRegion
    /// held an open record naming it as AWS received the call.
    intents_seen: Mutex<Vec<(String, bool)>>,
    /// Before the next promotion call, ap-northeast-1 (another operator)
    /// gets its own failover in first.
    race: AtomicBool,
    /// The next promotion call never reaches AWS: the controller is killed
    /// while it is on its way.
    hold: AtomicBool,
    held: tokio::sync::Notify,
}

impl Spy {
    fn new(sim: Arc<LiveSim>) -> Arc<Self> {
        Arc::new(Self {
            sim,
            client: OnceLock::new(),
            namespace: OnceLock::new(),
            intents_seen: Mutex::new(Vec::new()),
            race: AtomicBool::new(false),
            hold: AtomicBool::new(false),
            held: tokio::sync::Notify::new(),
        })
    }

    fn watch(&self, h: &Harness) {
        let _ = self.client.set(h.client.clone());
        let _ = self.namespace.set(h.namespace.clone());
    }

    fn intents_seen(&self) -> Vec<(String, bool)> {
        self.intents_seen.lock().unwrap().clone()
    }

    async fn before_promotion(&self, region: &str) {
        if let (Some(client), Some(namespace)) = (self.client.get(), self.namespace.get()) {
            let target: ShopRegion = Api::namespaced(client.clone(), namespace)
                .get(&name(region))
                .await
                .unwrap();
            let open = target
                .status
                .and_then(|s| s.last_failover)
                .is_some_and(|r| r.result.is_none() && r.to == region);
            self.intents_seen
                .lock()
                .unwrap()
                .push((region.to_string(), open));
        }
        if self.hold.swap(false, Ordering::SeqCst) {
            self.held.notify_one();
            std::future::pending::<()>().await;
        }
        if self.race.swap(false, Ordering::SeqCst) {
            let global = self.sim.cloud().global_cluster(GLOBAL).unwrap();
            let ap = global.members.iter().find(|m| m.region == AP).unwrap();
            self.sim
                .cloud()
                .aurora(AP)
                .failover_global_cluster(GLOBAL, &ap.cluster_arn, true)
                .await
                .expect("the competing failover is accepted");
        }
    }
}

/// The cloud the controller gets: the simulation, Aurora through the spy.
struct SpyCloud(Arc<Spy>);

impl Cloud for SpyCloud {
    fn aurora(&self, region: &str) -> Arc<dyn AuroraPort> {
        Arc::new(SpyAurora {
            inner: self.0.sim.aurora(region),
            region: region.to_string(),
            spy: self.0.clone(),
        })
    }
    fn elasticache(&self, region: &str) -> Arc<dyn ElastiCachePort> {
        self.0.sim.elasticache(region)
    }
    fn clock(&self) -> Arc<dyn Clock> {
        self.0.sim.clock()
    }
    fn speed(&self) -> u32 {
        self.0.sim.speed()
    }
    fn probe(&self) -> Arc<dyn Probe> {
        self.0.sim.probe()
    }
}

struct SpyAurora {
    inner: Arc<dyn AuroraPort>,
    region: String,
    spy: Arc<Spy>,
}

#[async_trait]
impl AuroraPort for SpyAurora {
    fn region(&self) -> &str {
        &self.region
    }
    async fn describe_global_cluster(&self, id: &str) -> Result<Option<GlobalCluster>, CloudError> {
        self.inner.describe_global_cluster(id).await
    }
    async fn create_global_cluster(
        &self,
        request: &CreateGlobalClusterRequest,
    ) -> Result<GlobalCluster, CloudError> {
        self.inner.create_global_cluster(request).await
    }
    async fn delete_global_cluster(&self, id: &str) -> Result<(), CloudError> {
        self.inner.delete_global_cluster(id).await
    }
    async fn modify_global_cluster(
        &self,
        request: &ModifyGlobalClusterRequest,
    ) -> Result<GlobalCluster, CloudError> {
        self.inner.modify_global_cluster(request).await
    }
    async fn remove_from_global_cluster(
        &self,
        global_cluster_id: &str,
        cluster_arn: &str,
    ) -> Result<(), CloudError> {
        self.inner
            .remove_from_global_cluster(global_cluster_id, cluster_arn)
            .await
    }
    async fn failover_global_cluster(
        &self,
        global_cluster_id: &str,
        target_cluster_arn: &str,
        allow_data_loss: bool,
    ) -> Result<(), CloudError> {
        self.spy.before_promotion(&self.region).await;
        self.inner
            .failover_global_cluster(global_cluster_id, target_cluster_arn, allow_data_loss)
            .await
    }
    async fn switchover_global_cluster(
        &self,
        global_cluster_id: &str,
        target_cluster_arn: &str,
    ) -> Result<(), CloudError> {
        self.spy.before_promotion(&self.region).await;
        self.inner
            .switchover_global_cluster(global_cluster_id, target_cluster_arn)
            .await
    }
    async fn describe_cluster(&self, id: &str) -> Result<Option<Cluster>, CloudError> {
        self.inner.describe_cluster(id).await
    }
    async fn describe_clusters(&self) -> Result<Vec<Cluster>, CloudError> {
        self.inner.describe_clusters().await
    }
    async fn describe_global_clusters(&self) -> Result<Vec<GlobalCluster>, CloudError> {
        self.inner.describe_global_clusters().await
    }
    async fn describe_instances(&self) -> Result<Vec<RegionInstance>, CloudError> {
        self.inner.describe_instances().await
    }
    async fn replication_lags(
        &self,
        cluster_ids: &[String],
        now: Timestamp,
    ) -> Result<std::collections::BTreeMap<String, Option<Duration>>, CloudError> {
        self.inner.replication_lags(cluster_ids, now).await
    }
    async fn create_cluster(&self, request: &CreateClusterRequest) -> Result<Cluster, CloudError> {
        self.inner.create_cluster(request).await
    }
    async fn modify_cluster(&self, request: &ModifyClusterRequest) -> Result<Cluster, CloudError> {
        self.inner.modify_cluster(request).await
    }
    async fn delete_cluster(&self, request: &DeleteClusterRequest) -> Result<(), CloudError> {
        self.inner.delete_cluster(request).await
    }
    async fn add_tags(&self, resource_arn: &str, tags: &Tags) -> Result<(), CloudError> {
        self.inner.add_tags(resource_arn, tags).await
    }
    async fn list_instances(&self, cluster_id: &str) -> Result<Vec<Instance>, CloudError> {
        self.inner.list_instances(cluster_id).await
    }
    async fn create_instance(
        &self,
        request: &CreateInstanceRequest,
    ) -> Result<Instance, CloudError> {
        self.inner.create_instance(request).await
    }
    async fn delete_instance(&self, instance_id: &str) -> Result<(), CloudError> {
        self.inner.delete_instance(instance_id).await
    }
    async fn modify_instance(&self, request: &ModifyInstanceRequest) -> Result<(), CloudError> {
        self.inner.modify_instance(request).await
    }
    async fn describe_subnet_group(&self, name: &str) -> Result<Option<SubnetGroup>, CloudError> {
        self.inner.describe_subnet_group(name).await
    }
    async fn default_engine_version(
        &self,
        engine: &str,
        major: &str,
    ) -> Result<Option<String>, CloudError> {
        self.inner.default_engine_version(engine, major).await
    }
    async fn replication_lag(
        &self,
        cluster_id: &str,
        now: Timestamp,
    ) -> Result<Option<Duration>, CloudError> {
        self.inner.replication_lag(cluster_id, now).await
    }
}

/// A provisioned acme fleet: every region Ready, every region judged
/// Healthy by the controller, at provisioning speed.
struct Fleet {
    sim: Arc<LiveSim>,
    spy: Arc<Spy>,
    h: Harness,
    /// Exactly one Aurora writer and one Redis primary, checked every
    /// millisecond for the whole test.
    watchdog: tokio::task::JoinHandle<Vec<String>>,
    stop_watchdog: Arc<AtomicBool>,
}

impl Fleet {
    async fn start(edit: impl Fn(&mut ShopRegion)) -> Fleet {
        let sim = Arc::new(LiveSim::start(
            SimCloud::new(VirtualClock::default()),
            PROVISIONING_SPEED,
        ));
        let spy = Spy::new(sim.clone());
        let h = Harness::in_process_with(Some(Arc::new(SpyCloud(spy.clone())))).await;
        spy.watch(&h);
        for region in REGIONS {
            let mut sr = sample(&format!("samples/acme-{region}.yaml"));
            edit(&mut sr);
            h.create(&sr).await.unwrap();
        }
        for region in REGIONS {
            h.wait_for(
                &name(region),
                "Ready, and every region judged Healthy",
                |r| {
                    is_true(r, types::READY)
                        && is_true(r, types::DATABASE_READY)
                        && is_true(r, types::CACHE_READY)
                        && r.status.as_ref().is_some_and(|s| {
                            s.health.len() == 3
                                && s.health.iter().all(|h| h.verdict == HealthVerdict::Healthy)
                        })
                },
            )
            .await;
        }
        let stop_watchdog = Arc::new(AtomicBool::new(false));
        let watchdog = tokio::spawn(one_writer_watchdog(sim.clone(), stop_watchdog.clone()));
        Fleet {
            sim,
            spy,
            h,
            watchdog,
            stop_watchdog,
        }
    }

    fn cloud(&self) -> &SimCloud {
        self.sim.cloud()
    }

    fn now(&self) -> Timestamp {
        self.cloud().clock().now()
    }

    async fn region(&self, region: &str) -> ShopRegion {
        self.h.regions().get(&name(region)).await.unwrap()
    }

    async fn wait_for(
        &self,
        region: &str,
        what: &str,
        check: impl Fn(&ShopRegion) -> bool,
    ) -> ShopRegion {
        self.h.wait_for(&name(region), what, check).await
    }

    async fn hpa_min(&self, region: &str) -> i32 {
        Api::<HorizontalPodAutoscaler>::namespaced(self.h.client.clone(), &self.h.namespace)
            .get(&format!("acme-{region}-orders"))
            .await
            .unwrap()
            .spec
            .min_replicas
            .unwrap_or(1)
    }

    async fn topology(&self, region: &str) -> std::collections::BTreeMap<String, String> {
        Api::<ConfigMap>::namespaced(self.h.client.clone(), &self.h.namespace)
            .get(&format!("acme-{region}-topology"))
            .await
            .unwrap()
            .data
            .unwrap_or_default()
    }

    async fn events(&self, region: &str, reason: &str) -> Vec<K8sEvent> {
        Api::<K8sEvent>::namespaced(self.h.client.clone(), &self.h.namespace)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref())
                        == Some(name(region).as_str())
            })
            .collect()
    }

    async fn wait_for_event(&self, region: &str, reason: &str) -> K8sEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(event) = self.events(region, reason).await.pop() {
                return event;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {reason} event for {}",
                name(region)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (real time) for a condition on the simulated cloud.
    async fn wait_until(&self, what: &str, check: impl Fn(&SimCloud) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !check(self.cloud()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; calls: {:?}",
                self.cloud().calls_by_op()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Changes the simulation's speed and lets two probe rounds pass at the
    /// new pace, so that the last lag reading before what the test does
    /// next is as fresh as in production (a round at provisioning speed
    /// covers minutes).
    async fn pace(&self, speed: u32) {
        self.sim.set_speed(speed);
        self.let_pass(probe_interval(speed) * 2 + Duration::from_secs(1))
            .await;
    }

    /// Lets `cloud_time` pass on the simulated clock.
    async fn let_pass(&self, cloud_time: Duration) {
        let until = self.now() + cloud_time;
        while self.now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn writer(&self) -> Option<String> {
        self.cloud()
            .global_cluster(GLOBAL)
            .and_then(|g| g.writer().map(|m| m.region.clone()))
    }

    fn cache_primary(&self) -> Option<String> {
        self.cloud()
            .global_replication_groups()
            .first()
            .and_then(|g| g.primary().map(|m| m.region.clone()))
    }

    fn outage(&self, region: &str) -> Timestamp {
        let at = self.now();
        self.cloud().inject(Fault::RegionOutage {
            region: region.into(),
        });
        at
    }

    async fn stop(self) {
        self.stop_watchdog.store(true, Ordering::SeqCst);
        let violations = self.watchdog.await.unwrap();
        assert!(
            violations.is_empty(),
            "more than one writer or primary at some instant: {violations:?}"
        );
        self.h.stop().await;
    }
}

async fn one_writer_watchdog(sim: Arc<LiveSim>, stop: Arc<AtomicBool>) -> Vec<String> {
    let mut violations = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        if let Some(global) = sim.cloud().global_cluster(GLOBAL) {
            let writers = global.members.iter().filter(|m| m.is_writer).count();
            if writers != 1 {
                violations.push(format!("{writers} Aurora writers: {:?}", global.members));
            }
        }
        for datastore in sim.cloud().global_replication_groups() {
            let primaries = datastore.members.iter().filter(|m| m.is_primary).count();
            if primaries != 1 {
                violations.push(format!(
                    "{primaries} Redis primaries: {:?}",
                    datastore.members
                ));
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    violations
}

fn is_true(region: &ShopRegion, type_: &str) -> bool {
    condition(region, type_).is_some_and(|c| c.status == "True")
}

fn reason_of(region: &ShopRegion, type_: &str) -> String {
    condition(region, type_)
        .map(|c| c.reason.clone())
        .unwrap_or_default()
}

fn last_failover(region: &ShopRegion) -> Option<shopfleet::api::FailoverRecord> {
    region.status.as_ref().and_then(|s| s.last_failover.clone())
}

fn completed(region: &ShopRegion) -> bool {
    last_failover(region).is_some_and(|r| r.result == Some(FailoverResult::Completed))
}

fn since(region: &ShopRegion, of: &str) -> Timestamp {
    region
        .status
        .as_ref()
        .and_then(|s| s.health.iter().find(|h| h.region == of))
        .and_then(|h| h.since)
        .unwrap_or_else(|| panic!("no since for {of} in {}", region.name_any()))
}

fn seconds(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64()
}

fn capacity(region: &str) -> shopfleet::workload::Capacity {
    let sr = sample(&format!("samples/acme-{region}.yaml"));
    plan_capacity(&sr.spec.orders, sr.spec.failover.order.len())
}

fn calls(cloud: &SimCloud, op: Op) -> Vec<shopfleet::sim::CallRecord> {
    cloud.calls().into_iter().filter(|c| c.op == op).collect()
}

// Several worker threads, as the operator has: the timings measured here
// must not include the test's own polling queueing behind the controller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_writer_region_fails_over_to_the_first_healthy_region_and_the_survivors_absorb_it() {
    let f = Fleet::start(|_| {}).await;
    for region in [EU, AP] {
        assert_eq!(f.hpa_min(region).await, capacity(region).min_replicas);
    }
    f.pace(MEASURING_SPEED).await;

    // Record, in cloud time, when each survivor's HPA minimum is raised.
    let raised: Arc<Mutex<Vec<(String, Timestamp)>>> = Arc::default();
    let hpa_watch = {
        let raised = raised.clone();
        let client = f.h.client.clone();
        let namespace = f.h.namespace.clone();
        let clock = f.cloud().clock().clone();
        tokio::spawn(async move {
            let hpas = Api::<HorizontalPodAutoscaler>::namespaced(client, &namespace);
            let mut pending = vec![EU, AP];
            while !pending.is_empty() {
                for region in pending.clone() {
                    let hpa = hpas.get(&format!("acme-{region}-orders")).await.unwrap();
                    let min = hpa.spec.min_replicas.unwrap_or(1);
                    if min == capacity(region).absorbing_min_replicas {
                        raised
                            .lock()
                            .unwrap()
                            .push((region.to_string(), clock.now()));
                        pending.retain(|r| *r != region);
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let outage_at = f.outage(US);
    let eu = f
        .wait_for(EU, "us-east-1 judged Unhealthy", |r| {
            r.status.as_ref().is_some_and(|s| {
                s.health
                    .iter()
                    .any(|h| h.region == US && h.verdict == HealthVerdict::Unhealthy)
            })
        })
        .await;
    let declared = since(&eu, US) + 30.seconds();
    // Just before the writer is declared lost the simulation slows down to
    // real time: what follows is measured at the pace of production, where
    // the controller's own latency counts in full.
    while f.now() < declared - 300.milliseconds() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    f.sim.set_speed(1);
    f.wait_until("FailoverGlobalCluster", |c| {
        !calls(c, Op::FailoverGlobalCluster).is_empty()
    })
    .await;
    tokio::time::timeout(Duration::from_secs(20), hpa_watch)
        .await
        .expect("both survivors raise their HPA minimum")
        .unwrap();
    let call_at = calls(f.cloud(), Op::FailoverGlobalCluster)[0].at;
    let raised = raised.lock().unwrap().clone();

    f.sim.set_speed(UNHURRIED_SPEED);
    let eu = f.wait_for(EU, "the failover completed", completed).await;
    let record = last_failover(&eu).unwrap();
    assert_eq!(record.kind, FailoverKind::Failover);
    assert_eq!((record.from.as_str(), record.to.as_str()), (US, EU));
    assert!(record.duration_seconds.is_some_and(|d| d > 0.0));
    assert_eq!(
        record.data_loss_risk_seconds,
        Some(0.15),
        "the lag before the outage"
    );
    // Both promotions are asked for, in this order, before either is seen
    // done; AWS completes the two independently, so the writer and the
    // cache primary may be seen moved in either order. The topology comes
    // last.
    let steps = &record.completed_steps;
    assert_eq!(
        steps[..2],
        [
            FailoverStep::AuroraFailoverRequested,
            FailoverStep::CacheFailoverRequested,
        ],
        "{steps:?}"
    );
    let mut moved = steps[2..4].to_vec();
    moved.sort_by_key(|step| format!("{step:?}"));
    assert_eq!(
        moved,
        [
            FailoverStep::AuroraWriterMoved,
            FailoverStep::CachePrimaryMoved
        ],
        "{steps:?}"
    );
    assert_eq!(steps[4..], [FailoverStep::TopologyUpdated], "{steps:?}");
    let started_at = record.started_at;
    assert!(started_at <= call_at, "the intent is dated before the call");
    assert_eq!(
        f.spy.intents_seen(),
        [(EU.to_string(), true)],
        "AWS received the promotion only once the intent was stored"
    );
    f.wait_for_event(EU, "FailoverStarted").await;
    let done = f.wait_for_event(EU, "FailoverCompleted").await;
    assert_eq!(
        f.h.metrics
            .failovers_by(FailoverKind::Failover, "completed"),
        1
    );
    assert!(
        done.note
            .as_deref()
            .unwrap_or_default()
            .contains("eu-west-1 is the writer"),
        "{:?}",
        done.note
    );

    // AWS: one promotion each, to eu-west-1, the first healthy region.
    assert_eq!(f.writer().as_deref(), Some(EU));
    assert_eq!(f.cache_primary().as_deref(), Some(EU));
    let aurora = f.cloud().failovers();
    assert_eq!(aurora.len(), 1);
    assert!(aurora[0].allow_data_loss);
    assert_eq!(f.cloud().cache_failovers().len(), 1);
    assert_eq!(f.cloud().call_count(Op::SwitchoverGlobalCluster), 0);
    assert_eq!(
        f.cloud().call_count(Op::FailoverGlobalCluster),
        1,
        "only eu-west-1 asked"
    );

    // The workload follows: eu-west-1's pods roll to the primary role, the
    // others point at it, the survivors hold the absorbing minimum.
    let eu_topology = f.topology(EU).await;
    assert_eq!(eu_topology["ROLE"], "primary");
    assert_eq!(eu_topology["WRITER_REGION"], EU);
    assert!(eu_topology["CACHE_PRIMARY_ENDPOINT"].contains(EU));
    let ap = f
        .wait_for(AP, "ap-northeast-1 follows the new writer", |r| {
            r.status.as_ref().and_then(|s| s.writer_region.as_deref()) == Some(EU)
        })
        .await;
    assert_eq!(
        ap.status.as_ref().unwrap().role,
        Some(RegionRole::Secondary)
    );
    assert_eq!(f.topology(AP).await["WRITER_REGION"], EU);
    let us = f
        .wait_for(US, "the lost region learns it is not the writer", |r| {
            r.status.as_ref().and_then(|s| s.role) == Some(RegionRole::Secondary)
        })
        .await;
    assert_eq!(f.topology(US).await["ROLE"], "secondary", "{:?}", us.status);
    for region in [EU, AP] {
        assert_eq!(
            f.hpa_min(region).await,
            capacity(region).absorbing_min_replicas,
            "{region}"
        );
    }
    let aurora_done = aurora_completed(&f);
    let cache_done = f.cloud().cache_failovers()[0].completed_at.unwrap();

    // The old writer comes back: a secondary, no failback, and the
    // survivors return to their ordinary minimum.
    f.cloud().heal_region(US);
    f.wait_for(US, "us-east-1 rejoins as a secondary", |r| {
        is_true(r, types::DATABASE_READY)
            && r.status
                .as_ref()
                .is_some_and(|s| s.database.as_ref().is_some_and(|d| !d.writer))
    })
    .await;
    for region in [EU, AP] {
        f.wait_for(region, "the fleet is whole again", |r| {
            r.status
                .as_ref()
                .and_then(|s| s.orders.as_ref())
                .is_some_and(|o| !o.absorbing)
        })
        .await;
        assert_eq!(f.hpa_min(region).await, capacity(region).min_replicas);
    }
    f.wait_for(US, "us-east-1's cache a secondary", |r| {
        r.status
            .as_ref()
            .and_then(|s| s.cache.as_ref())
            .is_some_and(|c| !c.primary && c.primary_region.as_deref() == Some(EU))
    })
    .await;
    assert_eq!(f.topology(US).await["ROLE"], "secondary");
    assert_eq!(f.writer().as_deref(), Some(EU), "no automatic failback");
    assert_eq!(f.cloud().call_count(Op::FailoverGlobalCluster), 1);
    assert_eq!(f.cloud().call_count(Op::SwitchoverGlobalCluster), 0);

    eprintln!(
        "MEASURED (cloud time; detection at speed {MEASURING_SPEED}, the decision at speed 1): writer declared lost (first bad sample + unhealthyAfter) -> FailoverGlobalCluster: {:.2} s; -> raised HPA minimums: {}; outage -> declared lost: {:.1} s; RTO outage -> Aurora writer available: {:.1} s, -> Redis primary available: {:.1} s",
        seconds(declared, call_at),
        raised
            .iter()
            .map(|(r, at)| format!("{r} {:.2} s", seconds(declared, *at)))
            .collect::<Vec<_>>()
            .join(", "),
        seconds(outage_at, declared),
        seconds(outage_at, aurora_done),
        seconds(outage_at, cache_done),
    );
    assert!(
        seconds(declared, call_at) <= 2.0,
        "the failover call came {:.2} s after the writer was declared lost",
        seconds(declared, call_at)
    );
    for (region, at) in &raised {
        assert!(
            seconds(declared, *at) <= 2.0,
            "{region} raised its minimum {:.2} s after the writer was declared lost",
            seconds(declared, *at)
        );
    }
    f.stop().await;
}

fn aurora_completed(f: &Fleet) -> Timestamp {
    f.cloud().failovers()[0]
        .completed_at
        .expect("AWS finished the failover")
}

#[tokio::test]
async fn a_failover_beyond_the_rpo_budget_is_refused_and_aws_is_never_asked() {
    let f = Fleet::start(|_| {}).await;
    for region in [EU, AP] {
        f.cloud()
            .set_replication_lag(region, Duration::from_secs(45));
    }
    f.wait_for(EU, "FailoverReady=False (RPOBudgetExceeded)", |r| {
        reason_of(r, types::FAILOVER_READY) == "RPOBudgetExceeded"
    })
    .await;
    f.pace(FAILOVER_SPEED).await;
    f.outage(US);
    let refused = f.wait_for_event(EU, "FailoverRefused").await;
    let note = refused.note.unwrap_or_default();
    assert!(
        note.starts_with("RPOBudgetExceeded: writer us-east-1 is lost"),
        "{note}"
    );
    assert_eq!(refused.type_.as_deref(), Some("Warning"));
    let eu = f
        .wait_for(EU, "the refusal in FailoverReady", |r| {
            condition(r, types::FAILOVER_READY)
                .is_some_and(|c| c.message.starts_with("writer us-east-1 is lost"))
        })
        .await;
    assert_eq!(reason_of(&eu, types::FAILOVER_READY), "RPOBudgetExceeded");
    assert!(
        is_true(&eu, types::READY) || reason_of(&eu, types::READY) != "RPOBudgetExceeded",
        "a refusal is the fleet's state, not this region's readiness"
    );
    // Well past every candidate's turn: still nobody asked AWS.
    f.pace(UNHURRIED_SPEED).await;
    f.let_pass(Duration::from_secs(120)).await;
    assert_eq!(f.cloud().call_count(Op::FailoverGlobalCluster), 0);
    assert_eq!(f.cloud().call_count(Op::FailoverGlobalReplicationGroup), 0);
    for region in REGIONS {
        assert_eq!(last_failover(&f.region(region).await), None, "{region}");
    }
    assert!(f.h.metrics.failovers_by(FailoverKind::Failover, "refused") >= 1);
    assert_eq!(f.writer().as_deref(), Some(US));
    f.stop().await;
}

#[tokio::test]
async fn changing_the_first_region_in_git_switches_over_without_data_loss() {
    let f = Fleet::start(|_| {}).await;
    f.pace(UNHURRIED_SPEED).await;
    let order = serde_json::json!({"spec": {"failover": {"order": [EU, US, AP]}}});
    for region in REGIONS {
        f.h.regions()
            .patch(
                &name(region),
                &PatchParams::default(),
                &Patch::Merge(&order),
            )
            .await
            .unwrap();
    }
    let eu = f.wait_for(EU, "the switchover completed", completed).await;
    let record = last_failover(&eu).unwrap();
    assert_eq!(record.kind, FailoverKind::Switchover);
    assert_eq!((record.from.as_str(), record.to.as_str()), (US, EU));
    assert_eq!(record.data_loss_risk_seconds, Some(0.0));
    assert_eq!(
        record.completed_steps[0],
        FailoverStep::AuroraSwitchoverRequested
    );
    f.wait_for_event(EU, "SwitchoverCompleted").await;
    assert_eq!(f.spy.intents_seen(), [(EU.to_string(), true)]);

    assert_eq!(f.cloud().call_count(Op::SwitchoverGlobalCluster), 1);
    assert_eq!(
        f.cloud().call_count(Op::FailoverGlobalCluster),
        0,
        "the no-data-loss path only"
    );
    let aurora = f.cloud().failovers();
    assert_eq!(aurora.len(), 1);
    assert!(!aurora[0].allow_data_loss);
    assert_eq!(aurora[0].data_loss_window, Duration::ZERO);
    assert_eq!(f.writer().as_deref(), Some(EU));
    assert_eq!(f.cache_primary().as_deref(), Some(EU));
    assert_eq!(f.topology(EU).await["ROLE"], "primary");
    for region in REGIONS {
        f.wait_for(region, "the new first region acknowledged", |r| {
            r.status
                .as_ref()
                .and_then(|s| s.failover.as_ref())
                .and_then(|f| f.preferred_region.as_deref())
                == Some(EU)
        })
        .await;
    }
    let us = f.region(US).await;
    assert_eq!(us.status.unwrap().role, Some(RegionRole::Secondary));
    // Nobody was lost: nobody absorbs.
    for region in REGIONS {
        assert_eq!(f.hpa_min(region).await, capacity(region).min_replicas);
    }
    f.stop().await;
}

#[tokio::test]
async fn manual_mode_never_fails_over_and_says_what_it_would_do() {
    let f = Fleet::start(|sr| sr.spec.failover.mode = FailoverMode::Manual).await;
    f.pace(FAILOVER_SPEED).await;
    f.outage(US);
    let eu = f
        .wait_for(EU, "FailoverReady=True (AwaitingManualFailover)", |r| {
            reason_of(r, types::FAILOVER_READY) == "AwaitingManualFailover"
        })
        .await;
    let ready = condition(&eu, types::FAILOVER_READY).unwrap();
    assert_eq!(ready.status, "True");
    assert!(
        ready.message.contains("fail over to eu-west-1")
            && ready
                .message
                .contains("put eu-west-1 first in failover.order"),
        "{}",
        ready.message
    );
    f.pace(UNHURRIED_SPEED).await;
    f.let_pass(Duration::from_secs(180)).await;
    assert_eq!(f.cloud().call_count(Op::FailoverGlobalCluster), 0);
    assert_eq!(f.cloud().call_count(Op::FailoverGlobalReplicationGroup), 0);
    assert_eq!(f.writer().as_deref(), Some(US));
    let eu = f.region(EU).await;
    assert_eq!(last_failover(&eu), None);
    assert!(
        reason_of(&eu, types::READY) != "AwaitingManualFailover",
        "Manual mode alone does not make a region unready"
    );
    // Capacity does not wait for a human: the survivors absorb.
    for region in [EU, AP] {
        assert_eq!(
            f.hpa_min(region).await,
            capacity(region).absorbing_min_replicas
        );
    }
    f.stop().await;
}

#[tokio::test]
async fn a_failover_call_whose_answer_is_lost_is_recorded_from_aws_and_not_sent_twice() {
    let f = Fleet::start(|_| {}).await;
    f.pace(FAILOVER_SPEED).await;
    // The next mutating call in eu-west-1 (its promotion) is carried out,
    // but its answer never arrives.
    f.cloud().inject(Fault::Timeout {
        region: EU.into(),
        calls: 1,
    });
    f.outage(US);
    let eu = f.wait_for(EU, "the failover completed", completed).await;
    let failovers = calls(f.cloud(), Op::FailoverGlobalCluster);
    assert_eq!(failovers.len(), 1, "{failovers:?}");
    assert_eq!(failovers[0].error, Some("timeout"));
    assert_eq!(f.cloud().failovers().len(), 1);
    assert_eq!(f.cloud().call_count(Op::FailoverGlobalReplicationGroup), 1);
    assert!(
        last_failover(&eu)
            .unwrap()
            .completed_steps
            .contains(&FailoverStep::AuroraFailoverRequested)
    );
    assert_eq!(f.writer().as_deref(), Some(EU));
    f.stop().await;
}

#[tokio::test]
async fn an_operator_killed_between_the_intent_and_the_call_resumes_with_one_call() {
    let mut f = Fleet::start(|_| {}).await;
    f.pace(FAILOVER_SPEED).await;
    f.spy.hold.store(true, Ordering::SeqCst);
    f.outage(US);
    // The promotion call is on its way to AWS when the operator dies.
    tokio::time::timeout(Duration::from_secs(20), f.spy.held.notified())
        .await
        .expect("eu-west-1 set out to promote itself");
    f.h.crash_and_restart_controller().await;
    assert_eq!(f.cloud().call_count(Op::FailoverGlobalCluster), 0);
    let intent = last_failover(&f.region(EU).await).expect("the intent was stored");
    assert!(intent.result.is_none() && intent.completed_steps.is_empty());

    // A new operator knows nothing of the regions' health: it re-judges,
    // holds the recorded intent meanwhile, and carries it out.
    let eu = f.wait_for(EU, "the failover completed", completed).await;
    let record = last_failover(&eu).unwrap();
    assert_eq!(
        record.started_at, intent.started_at,
        "the same promotion, resumed"
    );
    assert_eq!(f.cloud().call_count(Op::FailoverGlobalCluster), 1);
    assert_eq!(f.cloud().call_count(Op::FailoverGlobalReplicationGroup), 1);
    assert!(f.events(EU, "FailoverAbandoned").await.is_empty());
    assert_eq!(f.events(EU, "FailoverStarted").await.len(), 1);
    assert_eq!(f.writer().as_deref(), Some(EU));
    f.stop().await;
}

#[tokio::test]
async fn an_operator_killed_while_aws_promotes_resumes_from_aws_without_repeating_a_step() {
    let mut f = Fleet::start(|_| {}).await;
    f.pace(FAILOVER_SPEED).await;
    f.outage(US);
    f.wait_for(EU, "the Aurora promotion recorded", |r| {
        last_failover(r).is_some_and(|rec| {
            rec.completed_steps
                .contains(&FailoverStep::CacheFailoverRequested)
        })
    })
    .await;
    assert!(f.writer().as_deref() == Some(US), "AWS is still promoting");
    f.h.crash_and_restart_controller().await;
    let eu = f.wait_for(EU, "the failover completed", completed).await;
    assert_eq!(
        last_failover(&eu).unwrap().completed_steps.last(),
        Some(&FailoverStep::TopologyUpdated)
    );
    assert_eq!(f.cloud().call_count(Op::FailoverGlobalCluster), 1);
    assert_eq!(f.cloud().call_count(Op::FailoverGlobalReplicationGroup), 1);
    assert_eq!(f.events(EU, "FailoverCompleted").await.len(), 1);
    assert_eq!(f.topology(EU).await["ROLE"], "primary");
    f.stop().await;
}

#[tokio::test]
async fn a_region_that_loses_the_race_gets_aws_refusal_and_adopts_the_winner() {
    let f = Fleet::start(|_| {}).await;
    f.pace(FAILOVER_SPEED).await;
    // Between eu-west-1's last read and its call, another operator gets
    // ap-northeast-1's failover in first.
    f.spy.race.store(true, Ordering::SeqCst);
    f.outage(US);
    let eu = f
        .wait_for(EU, "eu-west-1 adopted the winner", |r| {
            last_failover(r).is_some_and(|rec| rec.result == Some(FailoverResult::Superseded))
        })
        .await;
    let record = last_failover(&eu).unwrap();
    assert!(
        !record
            .completed_steps
            .contains(&FailoverStep::AuroraFailoverRequested),
        "{:?}",
        record.completed_steps
    );
    f.wait_for_event(EU, "FailoverSuperseded").await;
    assert_eq!(
        f.h.metrics
            .failovers_by(FailoverKind::Failover, "superseded"),
        1
    );
    let failovers = calls(f.cloud(), Op::FailoverGlobalCluster);
    let refused: Vec<_> = failovers.iter().filter(|c| c.region == EU).collect();
    assert_eq!(
        refused.len(),
        1,
        "eu-west-1 asked once and never retried: {failovers:?}"
    );
    assert!(refused[0].error.is_some(), "AWS refused it: {failovers:?}");
    assert_eq!(f.cloud().failovers().len(), 1, "AWS carried out one");
    f.wait_until("ap-northeast-1 is the writer", |c| {
        c.global_cluster(GLOBAL)
            .and_then(|g| g.writer().map(|m| m.region.clone()))
            .as_deref()
            == Some(AP)
    })
    .await;
    // The cache follows the writer AWS chose.
    f.wait_until("the Redis primary in ap-northeast-1", |c| {
        c.global_replication_groups()
            .first()
            .and_then(|g| g.primary().map(|m| m.region.clone()))
            .as_deref()
            == Some(AP)
    })
    .await;
    f.wait_for_event(AP, "CachePrimaryFollowsWriter").await;
    // Inside the protocol: the intent recorded before the call, the steps,
    // and the close, as for every promotion.
    let followed = f
        .wait_for(AP, "the cache follow recorded and completed", |r| {
            last_failover(r).is_some_and(|rec| {
                rec.kind == FailoverKind::CacheFollow
                    && rec.result == Some(FailoverResult::Completed)
            })
        })
        .await;
    let record = last_failover(&followed).unwrap();
    assert_eq!(
        (record.from.as_str(), record.to.as_str()),
        (US, AP),
        "{record:?}"
    );
    assert!(
        record
            .completed_steps
            .contains(&FailoverStep::CacheFailoverRequested)
            && record
                .completed_steps
                .contains(&FailoverStep::CachePrimaryMoved),
        "{:?}",
        record.completed_steps
    );
    f.wait_for_event(AP, "CachePrimaryFollowed").await;
    f.wait_for(AP, "ap-northeast-1 is the primary", |r| {
        r.status.as_ref().and_then(|s| s.role) == Some(RegionRole::Primary)
    })
    .await;
    assert_eq!(f.topology(AP).await["ROLE"], "primary");
    f.pace(UNHURRIED_SPEED).await;
    f.let_pass(Duration::from_secs(60)).await;
    assert_eq!(
        calls(f.cloud(), Op::FailoverGlobalCluster).len(),
        2,
        "no second attempt by anyone"
    );
    f.stop().await;
}

/// The simulated cloud, except that the database endpoint of one shop in
/// one region refuses connections while `broken`: a health verdict of that
/// shop changes, and of no other.
struct OneShopEndpointDown {
    sim: Arc<LiveSim>,
    region: &'static str,
    /// Endpoints are named after the shop's cluster, `<shop>-<region>…`.
    prefix: &'static str,
    broken: Arc<AtomicBool>,
}

#[async_trait]
impl Probe for OneShopEndpointDown {
    async fn tcp(&self, region: &str, endpoint: &str) -> Signal {
        if self.broken.load(Ordering::SeqCst)
            && region == self.region
            && endpoint.starts_with(self.prefix)
        {
            return Signal::Down(format!("{endpoint} refuses connections"));
        }
        self.sim.probe().tcp(region, endpoint).await
    }

    async fn http(&self, region: &str, url: &str) -> Signal {
        self.sim.probe().http(region, url).await
    }
}

struct OneShopDownCloud(Arc<OneShopEndpointDown>);

impl Cloud for OneShopDownCloud {
    fn aurora(&self, region: &str) -> Arc<dyn AuroraPort> {
        self.0.sim.aurora(region)
    }
    fn elasticache(&self, region: &str) -> Arc<dyn ElastiCachePort> {
        self.0.sim.elasticache(region)
    }
    fn clock(&self) -> Arc<dyn Clock> {
        self.0.sim.clock()
    }
    fn speed(&self) -> u32 {
        self.0.sim.speed()
    }
    fn probe(&self) -> Arc<dyn Probe> {
        self.0.clone()
    }
}

/// Polls every 100 ms of (paused) time until `check` holds; fails after
/// `limit`.
async fn poll_until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A platform team hosts two shops in one operator. When a health verdict
/// of one shop changes, the operator reconciles that shop's ShopRegions,
/// and none of the other's: with a thousand shops, a region outage would
/// otherwise reconcile every ShopRegion once per shop.
#[tokio::test(start_paused = true)]
async fn a_verdict_change_of_one_shop_reconciles_none_of_another_shops_shopregions() {
    let sim = Arc::new(LiveSim::start(SimCloud::new(VirtualClock::default()), 1));
    let broken = Arc::new(AtomicBool::new(false));
    let cloud = OneShopDownCloud(Arc::new(OneShopEndpointDown {
        sim: sim.clone(),
        region: AP,
        prefix: "acme-",
        broken: broken.clone(),
    }));
    let h = Harness::in_process_with(Some(Arc::new(cloud))).await;
    for region in REGIONS {
        h.create(&sample(&format!("samples/acme-{region}.yaml")))
            .await
            .unwrap();
    }
    // globex: one region, eu-west-1, beside acme's.
    let mut globex = sample("samples/acme-eu-west-1.yaml");
    globex.metadata.name = Some("globex-eu-west-1".into());
    globex.spec.shop = "globex".into();
    globex.spec.failover.order = vec![EU.into()];
    h.create(&globex).await.unwrap();
    let ap_verdict = async || {
        h.regions()
            .get(&name(US))
            .await
            .unwrap()
            .status
            .and_then(|s| s.health.into_iter().find(|h| h.region == AP))
            .map(|h| h.verdict)
    };
    let ready = |name: String| {
        let h = &h;
        async move || {
            h.regions()
                .get(&name)
                .await
                .is_ok_and(|r| is_true(&r, types::READY))
        }
    };
    for shop_region in [name(US), name(EU), name(AP), "globex-eu-west-1".into()] {
        poll_until(
            "the fleet Ready",
            Duration::from_secs(3 * 3600),
            ready(shop_region),
        )
        .await;
    }
    poll_until(
        "ap-northeast-1 judged Healthy",
        Duration::from_secs(600),
        async || ap_verdict().await == Some(HealthVerdict::Healthy),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(600)).await;

    // How often globex is reconciled with nothing to do: its own polls.
    let globex_reconciles = || h.metrics.reconciles_of(&h.namespace, "globex-eu-west-1");
    let acme_reconciles = || REGIONS.map(|r| h.metrics.reconciles_of(&h.namespace, &name(r)));
    let next_globex = async || {
        let before = globex_reconciles();
        poll_until(
            "a reconcile of globex",
            Duration::from_secs(600),
            async || globex_reconciles() > before,
        )
        .await;
        tokio::time::Instant::now()
    };
    let first = next_globex().await;
    let period = next_globex().await - first;

    // Right after one of those polls, acme's ap-northeast-1 endpoint stops
    // answering, until acme's verdict on it changes.
    let globex_before = globex_reconciles();
    let acme_before = acme_reconciles();
    broken.store(true, Ordering::SeqCst);
    let broke = tokio::time::Instant::now();
    poll_until(
        "acme's verdict on ap-northeast-1 to change",
        Duration::from_secs(120),
        async || ap_verdict().await != Some(HealthVerdict::Healthy),
    )
    .await;
    let window = broke.elapsed();
    assert!(
        window + Duration::from_secs(1) < period,
        "the verdict took {window:?} to change, globex polls every {period:?}: the test cannot tell a trigger from a poll"
    );
    let acme_after = acme_reconciles();
    for (i, region) in REGIONS.iter().enumerate() {
        assert!(
            acme_after[i] > acme_before[i],
            "acme's ShopRegion in {region} was not reconciled on its shop's verdict change"
        );
    }
    assert_eq!(
        globex_reconciles(),
        globex_before,
        "globex was reconciled on acme's verdict change"
    );
    h.stop().await;
}
