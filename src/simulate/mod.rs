//! `shopfleet simulate`: the real controller, the in-process Kubernetes API
//! server and the simulated cloud in one process, on virtual time, driven
//! by a scenario (timed steps, faults, expectations).
//!
//! The runner is thin: it carries steps out, stamps what it observes with
//! the virtual clock and hands it to the [`record::Recorder`]; figures
//! ([`figures`]) and verdicts ([`expect`]) are pure functions of the record.
//!
//! Time: with [`Pace::Instant`] everything runs on one Tokio thread whose
//! clock is paused. The runtime jumps from one timer to the next (a
//! requeue, a rollout delay, a step, the end of an AWS operation) as soon as
//! every task waits, and the simulated cloud's clock *is* that runtime
//! clock, so a run costs only its computing and every measured duration is
//! exact. With [`Pace::Speed`] the virtual clock is `start + real elapsed ×
//! speed`: the run can be watched, and figures are as precise as the
//! computing is fast (the report says how precise).

pub mod expect;
pub mod figures;
pub mod fleet;
pub mod record;
pub mod render;
pub mod scenario;
mod timing;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::events::v1::Event as KubeEvent;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::client::ClientBuilder;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::api::ShopRegion;
use crate::clock::Clock;
use crate::cloud::budget::RequestBudget;
use crate::cloud::tags;
use crate::controller::{self, Context, Scope};
use crate::sim::{Fault, LiveSim, SimCloud, VirtualClock};
use crate::telemetry::{CountWritesLayer, Metrics};

pub use expect::Verdict;
pub use figures::Figures;
pub use record::{Entry, Record};
pub use scenario::{Action, Expectation, Scenario, ScenarioError, Step};
pub use timing::ClockCheck;

use fleet::{FleetFigures, Recorders};
use record::{
    AwsCalls, AwsInventory, ClusterSummary, FinalState, GlobalClusterSummary, summarize_region,
};

/// The namespace every ShopRegion of a scenario lives in.
pub const NAMESPACE: &str = "shop";

/// The default scenario and the manifests it applies, embedded so that
/// `shopfleet simulate` works from any directory.
const EMBEDDED: [(&str, &str); 5] = [
    (
        "samples/scenarios/bootstrap.yaml",
        include_str!("../../samples/scenarios/bootstrap.yaml"),
    ),
    (
        "samples/acme-us-east-1.yaml",
        include_str!("../../samples/acme-us-east-1.yaml"),
    ),
    (
        "samples/acme-eu-west-1.yaml",
        include_str!("../../samples/acme-eu-west-1.yaml"),
    ),
    (
        "samples/acme-ap-northeast-1.yaml",
        include_str!("../../samples/acme-ap-northeast-1.yaml"),
    ),
    (
        "samples/accounts/samples.yaml",
        include_str!("../../samples/accounts/samples.yaml"),
    ),
];

/// `samples/scenarios/bootstrap.yaml`, as embedded in the binary.
pub fn default_scenario() -> Result<Scenario, ScenarioError> {
    let (origin, text) = EMBEDDED[0];
    Scenario::parse(text, origin, |file| {
        let path = scenario::join_lexically("samples/scenarios", file);
        EMBEDDED
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, text)| text.to_string())
            .ok_or_else(|| format!("{path} is not embedded in this binary"))
    })
}

/// How virtual time relates to real time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// As fast as the computing allows; exact virtual time.
    Instant,
    /// This many virtual seconds per real second.
    Speed(u32),
}

impl Pace {
    fn speed(self) -> u32 {
        match self {
            Pace::Instant => 1,
            Pace::Speed(n) => n.max(1),
        }
    }
}

/// A finished run.
#[derive(Clone, Debug)]
pub struct Report {
    pub scenario: String,
    pub description: String,
    pub run_for: Duration,
    pub pace: Pace,
    pub record: Record,
    pub figures: Figures,
    pub verdicts: Vec<Verdict>,
    pub clock: ClockCheck,
    /// Real time the run took.
    pub wall_time: Duration,
    /// The simulated AWS durations the run used, by name.
    pub durations: Vec<(&'static str, Duration)>,
    /// The fleet form: `record` and `figures` are then those of one shop
    /// (the first), `verdicts` the fleet's.
    pub fleet: Option<FleetReport>,
}

/// What a fleet run adds to its report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetReport {
    /// The shop whose timeline, table and figures the report shows.
    pub shown_shop: String,
    pub figures: FleetFigures,
}

impl Report {
    /// Every expectation held.
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(|v| v.passed)
    }
}

/// Runs a scenario on a Tokio runtime of its own (paused for
/// [`Pace::Instant`]), calling `progress` with each timeline entry as it is
/// recorded. Must not be called from inside a Tokio runtime.
pub fn run_blocking(
    scenario: &Scenario,
    pace: Pace,
    progress: impl FnMut(&Entry),
) -> anyhow::Result<Report> {
    let runtime = match pace {
        Pace::Instant => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()?,
        Pace::Speed(_) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
    };
    runtime.block_on(run(scenario, pace, progress))
}

/// What the runner's watches report.
enum Observation {
    ShopRegion(Box<ShopRegion>),
    ShopRegionDeleted(String),
    Event(Box<KubeEvent>),
    Deployment(Box<Deployment>),
    CachePrimaryName(Box<Service>),
}

async fn run(
    scenario: &Scenario,
    pace: Pace,
    mut progress: impl FnMut(&Entry),
) -> anyhow::Result<Report> {
    let wall = std::time::Instant::now();
    let speed = pace.speed();
    let server = kubesim::ApiServer::start().await?;
    server.install_crd_yaml(&crate::api::crd_yaml())?;
    if pace == Pace::Instant {
        // A real API server sends a bookmark about once a minute; one a
        // second would only cost computing on virtual time.
        server.set_bookmark_interval(Duration::from_secs(60));
    }
    server.set_deployment_rollout(if scenario.deployment_ready_after.is_zero() {
        kubesim::RolloutPolicy::Immediate
    } else {
        kubesim::RolloutPolicy::AfterDelay(scenario.deployment_ready_after / speed)
    });

    let requests = timing::RequestTimer::default();
    // The user's client, as kubectl would be: applies manifests, watches.
    let user = ClientBuilder::try_from(server.config())?
        .with_layer(&requests)
        .build();
    let mut ns = Namespace::default();
    ns.metadata.name = Some(NAMESPACE.into());
    Api::<Namespace>::all(user.clone())
        .create(&PostParams::default(), &ns)
        .await?;

    let cloud = SimCloud::with_durations(VirtualClock::default(), scenario.durations.clone());
    // The report needs the counts only; a log of every call would grow with
    // the fleet and the run's length.
    cloud.keep_calls(0);
    if let Some(account) = &scenario.account {
        cloud.declare_account(account.clone());
    }
    let clock = cloud.clock().clone();
    let live = Arc::new(LiveSim::start(cloud.clone(), speed));

    let metrics = Arc::new(Metrics::default());
    let operator_client = ClientBuilder::try_from(server.config())?
        .with_layer(&CountWritesLayer::new(metrics.clone()))
        .with_layer(&requests)
        .build();
    let ctx = Arc::new(
        Context::new(operator_client, metrics.clone(), Some("simulate".into()))
            .with_cloud(live, RequestBudget::default()),
    );
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let controller = tokio::spawn(controller::run(
        ctx,
        Scope {
            namespace: Some(NAMESPACE.into()),
        },
        async {
            let _ = stop_rx.await;
        },
    ));

    let (tx, mut rx) = mpsc::unbounded_channel();
    let watches = [
        tokio::spawn(watch_shop_regions(user.clone(), tx.clone())),
        tokio::spawn(watch_events(user.clone(), tx.clone())),
        tokio::spawn(watch_workloads(user.clone(), tx)),
    ];

    // Time zero is now, once everything is up: at a paced speed, setting
    // up takes virtual time that belongs to no step.
    let origin = tokio::time::Instant::now();
    let mut recorders = Recorders::new(clock.now(), &scenario.shops);
    let mut next_step = 0;
    let mut failing_images: Vec<String> = Vec::new();
    let mut shown = 0;
    // What AWS showed was last handed to the recorders at this count of
    // the cloud's changes: looking again at every cluster of every shop on
    // each observation would cost the fleet's size each time.
    let mut aws_seen: Option<u64> = None;
    let deadline = |virtual_offset: Duration| origin + virtual_offset / speed;
    loop {
        let now = recorders.offset(clock.now());
        while let Some(step) = scenario.steps.get(next_step)
            && step.at <= now
        {
            carry_out(
                step,
                &user,
                &cloud,
                &server,
                &mut failing_images,
                &mut recorders,
                now,
            )
            .await?;
            next_step += 1;
        }
        while let Ok(observation) = rx.try_recv() {
            let at = recorders.offset(clock.now());
            observe(&mut recorders, at, observation);
        }
        let now = recorders.offset(clock.now());
        let changes = cloud.changes();
        if aws_seen != Some(changes) {
            recorders.aws(now, &cloud.writers(), &cloud.failovers());
            aws_seen = Some(changes);
        }
        for entry in recorders.shown_entries_since(shown) {
            progress(entry);
        }
        shown = recorders.shown().entry_count();
        if now >= scenario.run_for {
            break;
        }
        let mut wake = deadline(scenario.run_for);
        if let Some(step) = scenario.steps.get(next_step) {
            wake = wake.min(deadline(step.at));
        }
        if let Some(due) = cloud.next_completion() {
            wake = wake.min(deadline(recorders.offset(due)));
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            Some(observation) = rx.recv() => {
                let at = recorders.offset(clock.now());
                observe(&mut recorders, at, observation);
            }
        }
    }
    let end = recorders.offset(clock.now());

    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), controller).await;
    for watch in watches {
        watch.abort();
    }
    let mut last = final_states(&user, &cloud, &metrics, &recorders).await?;
    server.shutdown().await;

    let several = recorders.keys().count() > 1;
    let mut runs: Vec<(String, Record, Figures, Vec<Option<Verdict>>)> = recorders
        .into_inner()
        .into_iter()
        .map(|(shop, recorder)| {
            let record = recorder.finish(end, last.remove(&shop).unwrap_or_default());
            let figures = figures::figures(&record);
            let verdicts = scenario
                .expectations_for(&shop)
                .into_iter()
                .map(|e| {
                    e.map(|e| {
                        expect::evaluate(std::slice::from_ref(&e), &record, &figures).remove(0)
                    })
                })
                .collect();
            (shop, record, figures, verdicts)
        })
        .collect();
    let fleet = several.then(|| {
        let per_shop: Vec<(String, Figures)> = runs
            .iter()
            .map(|(shop, _, figures, _)| (shop.clone(), figures.clone()))
            .collect();
        FleetReport {
            shown_shop: runs[0].0.clone(),
            figures: fleet::fleet_figures(&per_shop),
        }
    });
    let fleet_verdicts = fleet.as_ref().map(|f| {
        let per_shop: Vec<(String, Vec<Option<Verdict>>)> = runs
            .iter()
            .map(|(shop, _, _, verdicts)| (shop.clone(), verdicts.clone()))
            .collect();
        fleet::fleet_verdicts(&scenario.expectations, &per_shop, &f.figures)
    });
    // The one shop's run, or the shown shop's.
    let (_, record, figures, verdicts) = runs.swap_remove(0);
    let verdicts = verdicts.into_iter().flatten().collect();
    Ok(Report {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        run_for: scenario.run_for,
        pace,
        record,
        figures,
        verdicts: fleet_verdicts.unwrap_or(verdicts),
        clock: requests.check(pace),
        wall_time: wall.elapsed(),
        durations: scenario.durations.fields(),
        fleet,
    })
}

/// Hands an observation to the recorder of the shop it is about.
fn observe(recorders: &mut Recorders, at: Duration, observation: Observation) {
    let shop_label = |labels: &BTreeMap<String, String>| {
        recorders.key_of_shop(
            labels
                .get(crate::workload::builders::labels::SHOP)
                .map(String::as_str),
        )
    };
    let key = match &observation {
        Observation::ShopRegion(object) => recorders.key_of_shop(Some(&object.spec.shop)),
        Observation::ShopRegionDeleted(name) => recorders.key_of_name(name),
        Observation::Event(event) => recorders.key_of_name(
            event
                .regarding
                .as_ref()
                .and_then(|r| r.name.as_deref())
                .unwrap_or_default(),
        ),
        Observation::Deployment(object) => shop_label(object.labels()),
        Observation::CachePrimaryName(object) => shop_label(object.labels()),
    };
    let Some(recorder) = key.and_then(|key| recorders.get_mut(&key)) else {
        return;
    };
    match observation {
        Observation::ShopRegion(object) => recorder.shop_region(at, &object),
        Observation::ShopRegionDeleted(name) => recorder.shop_region_deleted(at, &name),
        Observation::Event(event) => recorder.event(at, &event),
        Observation::Deployment(object) => recorder.deployment(at, &object),
        Observation::CachePrimaryName(object) => recorder.cache_primary_name(at, &object),
    }
}

/// The order Deployments and the cache primary names, as the pods see them.
async fn watch_workloads(client: Client, tx: mpsc::UnboundedSender<Observation>) {
    let managed = watcher::Config::default().labels("app.kubernetes.io/managed-by=shopfleet");
    let deployments = watcher(
        Api::<Deployment>::namespaced(client.clone(), NAMESPACE),
        managed.clone(),
    )
    .map(|event| match event {
        Ok(watcher::Event::Apply(d) | watcher::Event::InitApply(d)) => {
            Some(Observation::Deployment(Box::new(d)))
        }
        _ => None,
    });
    let services =
        watcher(Api::<Service>::namespaced(client, NAMESPACE), managed).map(|event| match event {
            Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s))
                if s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName") =>
            {
                Some(Observation::CachePrimaryName(Box::new(s)))
            }
            _ => None,
        });
    let mut both = futures::stream::select(deployments.boxed(), services.boxed());
    while let Some(observation) = both.next().await {
        if let Some(observation) = observation
            && tx.send(observation).is_err()
        {
            return;
        }
    }
}

async fn watch_shop_regions(client: Client, tx: mpsc::UnboundedSender<Observation>) {
    let api: Api<ShopRegion> = Api::namespaced(client, NAMESPACE);
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = stream.next().await {
        let observation = match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                Observation::ShopRegion(Box::new(o))
            }
            Ok(watcher::Event::Delete(o)) => Observation::ShopRegionDeleted(o.name_any()),
            Ok(watcher::Event::Init | watcher::Event::InitDone) => continue,
            // The watcher resumes by itself; a lost event shows up in the
            // next state it delivers.
            Err(_) => continue,
        };
        if tx.send(observation).is_err() {
            return;
        }
    }
}

async fn watch_events(client: Client, tx: mpsc::UnboundedSender<Observation>) {
    let api: Api<KubeEvent> = Api::namespaced(client, NAMESPACE);
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = stream.next().await {
        let observation = match event {
            Ok(watcher::Event::Apply(e) | watcher::Event::InitApply(e)) => {
                Observation::Event(Box::new(e))
            }
            Ok(_) | Err(_) => continue,
        };
        if tx.send(observation).is_err() {
            return;
        }
    }
}

/// Carries one step out as a user or the world would, and records it.
async fn carry_out(
    step: &Step,
    user: &Client,
    cloud: &SimCloud,
    server: &kubesim::ApiServer,
    failing_images: &mut Vec<String>,
    recorders: &mut Recorders,
    now: Duration,
) -> anyhow::Result<()> {
    recorders.step(now, &step.action);
    let raw: Api<DynamicObject> = Api::namespaced_with(
        user.clone(),
        NAMESPACE,
        &ApiResource::erase::<ShopRegion>(&()),
    );
    match &step.action {
        Action::Apply { name, object, .. } => {
            let applied = raw
                .patch(
                    name,
                    &PatchParams::apply("scenario").force(),
                    &Patch::Apply(object),
                )
                .await;
            refused(applied, recorders, now, name)?;
        }
        Action::Delete { name } => match raw.delete(name, &Default::default()).await {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(e) => return Err(e.into()),
        },
        Action::Set {
            names,
            field,
            value,
        } => {
            let patch = merge_patch(field, value.clone());
            for name in names {
                let changed = raw
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
                refused(changed, recorders, now, name)?;
            }
        }
        Action::Outage { region } => cloud.inject(Fault::RegionOutage {
            region: region.clone(),
        }),
        Action::Recover { region } => cloud.recover_region(region),
        Action::ApiOutage { region } => cloud.inject(Fault::ControlPlaneOutage {
            region: region.clone(),
        }),
        Action::HealthCheck { region, down: true } => cloud.inject(Fault::HealthCheckDown {
            region: region.clone(),
        }),
        Action::HealthCheck {
            region,
            down: false,
        } => cloud.heal_health_check(region),
        Action::Partition { region, peer } => cloud.inject(Fault::Partition {
            region: region.clone(),
            peer: peer.clone(),
        }),
        Action::Throttle { region, calls } => cloud.inject(Fault::Throttle {
            region: region.clone(),
            calls: *calls,
        }),
        Action::ServerErrors { region, calls } => cloud.inject(Fault::ServerError {
            region: region.clone(),
            calls: *calls,
        }),
        Action::Timeouts { region, calls } => cloud.inject(Fault::Timeout {
            region: region.clone(),
            calls: *calls,
        }),
        Action::Slow {
            region,
            operation,
            by,
        } => cloud.inject(Fault::SlowOperation {
            region: region.clone(),
            op: *operation,
            extra: *by,
        }),
        Action::Lag { region, to } => {
            cloud.set_replication_lag(region, *to);
            cloud.set_cache_replication_lag(region, *to);
        }
        Action::LagEnds { region } => cloud.clear_replication_lag(region),
        Action::FailingImage { image } => {
            failing_images.push(image.clone());
            server.set_failing_images(failing_images.clone());
        }
    }
    Ok(())
}

/// A refusal by the API server is part of the run (a scenario may expect
/// it); any other failure ends the run.
fn refused<T>(
    result: Result<T, kube::Error>,
    recorders: &mut Recorders,
    now: Duration,
    name: &str,
) -> anyhow::Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if (400..500).contains(&status.code) => {
            if let Some(recorder) = recorders
                .key_of_name(name)
                .and_then(|key| recorders.get_mut(&key))
            {
                recorder.rejected(now, name, &status.message);
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// `spec.failover.order` = v → `{"spec": {"failover": {"order": v}}}`.
fn merge_patch(field: &str, value: Value) -> Value {
    field
        .split('.')
        .rev()
        .fold(value, |inner, key| json!({ key: inner }))
}

/// The final state of the recorder `key` names, if any.
fn state_of(
    states: &mut BTreeMap<String, FinalState>,
    key: Option<String>,
) -> Option<&mut FinalState> {
    key.and_then(|key| states.get_mut(&key))
}

/// What the run ends with, per recorder: each shop's ShopRegions, AWS
/// resources and writers; the Kubernetes writes and AWS calls are the
/// operator's, every shop together.
async fn final_states(
    user: &Client,
    cloud: &SimCloud,
    metrics: &Metrics,
    recorders: &Recorders,
) -> anyhow::Result<BTreeMap<String, FinalState>> {
    let regions = Api::<ShopRegion>::namespaced(user.clone(), NAMESPACE)
        .list(&Default::default())
        .await?
        .items;
    let tally = cloud.call_tally();
    let successful_creates = tally
        .iter()
        .filter(|(op, _)| op.starts_with("Create"))
        .map(|(_, t)| t.calls - t.failed)
        .sum();
    let by_operation = tally
        .iter()
        .map(|(op, t)| (op.to_string(), t.calls))
        .collect();
    let fresh = FinalState {
        aws: AwsInventory {
            successful_creates,
            ..Default::default()
        },
        kube_writes: ["create", "update", "patch", "delete"]
            .into_iter()
            .map(|verb| (verb.to_string(), metrics.kube_writes_by(verb)))
            .filter(|(_, n)| *n > 0)
            .collect(),
        aws_calls: AwsCalls {
            mutating: tally.values().filter(|t| t.mutating).map(|t| t.calls).sum(),
            reads: tally
                .values()
                .filter(|t| !t.mutating)
                .map(|t| t.calls)
                .sum(),
            failed: tally.values().map(|t| t.failed).sum(),
            by_operation,
        },
        ..Default::default()
    };
    let mut states: BTreeMap<String, FinalState> = recorders
        .keys()
        .map(|key| (key.clone(), fresh.clone()))
        .collect();
    for region in &regions {
        if let Some(s) = state_of(&mut states, recorders.key_of_shop(Some(&region.spec.shop))) {
            s.regions.push(summarize_region(region));
            s.readers_wanted
                .insert(region.name_any(), region.spec.database.readers);
        }
    }
    for id in cloud.all_global_clusters() {
        let view = cloud.global_cluster(&id);
        let writer_region = view
            .as_ref()
            .and_then(|g| g.writer().map(|m| m.region.clone()));
        let members = view.as_ref().map_or(0, |g| g.members.len());
        let shop = view.as_ref().and_then(|g| {
            g.members.iter().find_map(|m| {
                let (_, id) = m.cluster_arn.rsplit_once(":cluster:")?;
                cloud
                    .cluster(&m.region, id)
                    .and_then(|c| c.tags.get(tags::SHOP).map(str::to_string))
            })
        });
        if let Some(s) = state_of(&mut states, recorders.key_of_shop(shop.as_deref())) {
            s.aws.global_clusters.push(GlobalClusterSummary {
                id,
                shop,
                writer_region,
                members,
            });
        }
    }
    for (region, id) in cloud.all_clusters() {
        let shop = cloud
            .cluster(&region, &id)
            .and_then(|c| c.tags.get(tags::SHOP).map(str::to_string));
        let instances = cloud.instances(&region, &id).len();
        if let Some(s) = state_of(&mut states, recorders.key_of_shop(shop.as_deref())) {
            s.aws.clusters.push(ClusterSummary {
                region,
                id,
                shop,
                instances,
            });
        }
    }
    for (region, id) in cloud.writers() {
        if let Some(s) = state_of(&mut states, recorders.key_of_cluster(&region, &id)) {
            s.aws.writers.push(region);
        }
    }
    for s in states.values_mut() {
        s.regions.sort_by(|a, b| a.shop_region.cmp(&b.shop_region));
        s.aws.writers.sort();
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_path_becomes_a_nested_merge_patch() {
        assert_eq!(
            merge_patch("spec.failover.order", json!(["eu-west-1", "us-east-1"])),
            json!({"spec": {"failover": {"order": ["eu-west-1", "us-east-1"]}}})
        );
    }

    #[test]
    fn the_embedded_default_scenario_parses_and_applies_the_three_samples() {
        let scenario = default_scenario().unwrap();
        assert_eq!(scenario.name, "bootstrap");
        let applied: Vec<&str> = scenario
            .steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Apply { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            applied,
            ["acme-us-east-1", "acme-eu-west-1", "acme-ap-northeast-1"]
        );
    }
}
