//! The scenario format (`samples/scenarios/*.yaml`): timed steps and
//! expectations, parsed strictly. An unknown field, a bad value or a step
//! that does not make sense is an error naming the step and the field;
//! nothing is run from a scenario that does not parse.
//!
//! `docs/simulation.md` documents every step and expectation.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::fleet::Fleet;
use crate::api::{KubeDuration, RegionRole};
use crate::sim::{Op, SimDurations, SimNetwork};

/// A scenario ready to run: manifests loaded, durations resolved, steps in
/// time order.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// The run stops at this virtual time.
    pub run_for: Duration,
    /// How long a Deployment rollout takes to become available.
    pub deployment_ready_after: Duration,
    /// The simulated AWS durations: defaults with the scenario's overrides.
    pub durations: SimDurations,
    /// The network the account already holds, per region; `None` leaves the
    /// simulated account undeclared (it then holds whatever is named).
    pub account: Option<BTreeMap<String, SimNetwork>>,
    pub steps: Vec<Step>,
    /// As written: in the fleet form, they name the template shop's
    /// ShopRegions and hold per shop ([`Fleet::expectations_for`]).
    pub expectations: Vec<Expectation>,
    /// The fleet form (`shops:`): the steps are already expanded to every
    /// shop. `None` runs the manifests as written.
    pub fleet: Option<Fleet>,
    /// Every shop the run applies ShopRegions of, in order of appearance.
    /// With more than one, each shop is recorded and checked on its own.
    pub shops: Vec<String>,
    /// ShopRegion name → shop, for every ShopRegion applied.
    pub shop_of: std::collections::BTreeMap<String, String>,
}

impl Scenario {
    /// The expectations as they apply to `shop`, one per expectation of
    /// the scenario: in the fleet form each names the shop's own copies;
    /// otherwise an expectation about one ShopRegion is about its shop
    /// alone (`None` for the others).
    pub fn expectations_for(&self, shop: &str) -> Vec<Option<Expectation>> {
        if let Some(fleet) = &self.fleet {
            return fleet
                .expectations_for(&self.expectations, shop)
                .into_iter()
                .map(Some)
                .collect();
        }
        self.expectations
            .iter()
            .map(|e| {
                let about = e
                    .shop_region()
                    .and_then(|name| self.shop_of.get(name))
                    .is_none_or(|owner| self.shops.len() <= 1 || owner == shop);
                about.then(|| e.clone())
            })
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub at: Duration,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Server-side apply of a ShopRegion manifest, as `kubectl apply
    /// --server-side` would: creates it or changes it. Sent as written, so
    /// that the API server can refuse a manifest its schema rejects.
    Apply {
        file: String,
        name: String,
        object: Value,
    },
    Delete {
        name: String,
    },
    /// Changes one spec field of ShopRegions, as a Git change would.
    Set {
        names: Vec<String>,
        field: String,
        value: Value,
    },
    Outage {
        region: String,
    },
    /// Ends the region's outage, its other faults and its lag spike.
    Recover {
        region: String,
    },
    Throttle {
        region: String,
        calls: u32,
    },
    ServerErrors {
        region: String,
        calls: u32,
    },
    Timeouts {
        region: String,
        calls: u32,
    },
    Slow {
        region: String,
        operation: Op,
        by: Duration,
    },
    Lag {
        region: String,
        to: Duration,
    },
    /// The end of a `lag` step that said `for`.
    LagEnds {
        region: String,
    },
    FailingImage {
        image: String,
    },
    /// Only the region's AWS APIs become unreachable; its data plane serves.
    ApiOutage {
        region: String,
    },
    /// The region's HTTP health checks start (`down`) or stop failing.
    HealthCheck {
        region: String,
        down: bool,
    },
    /// The network between two regions is cut (until either recovers).
    Partition {
        region: String,
        peer: String,
    },
}

impl Action {
    /// The step's name as the format spells it, for the timeline.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Apply { .. } => "apply",
            Action::Delete { .. } => "delete",
            Action::Set { .. } => "set",
            Action::Outage { .. } => "outage",
            Action::Recover { .. } => "recover",
            Action::Throttle { .. } => "throttle",
            Action::ServerErrors { .. } => "serverErrors",
            Action::Timeouts { .. } => "timeouts",
            Action::Slow { .. } => "slow",
            Action::Lag { .. } => "lag",
            Action::LagEnds { .. } => "lagEnds",
            Action::FailingImage { .. } => "failingImage",
            Action::ApiOutage { .. } => "apiOutage",
            Action::HealthCheck { .. } => "healthCheck",
            Action::Partition { .. } => "partition",
        }
    }

    /// The AWS region the step acts on, if it acts on one.
    pub fn region(&self) -> Option<&str> {
        match self {
            Action::Outage { region }
            | Action::Recover { region }
            | Action::Throttle { region, .. }
            | Action::ServerErrors { region, .. }
            | Action::Timeouts { region, .. }
            | Action::Slow { region, .. }
            | Action::Lag { region, .. }
            | Action::LagEnds { region }
            | Action::ApiOutage { region }
            | Action::HealthCheck { region, .. }
            | Action::Partition { region, .. } => Some(region),
            Action::Apply { object, .. } => object.pointer("/spec/region").and_then(Value::as_str),
            Action::Delete { .. } | Action::Set { .. } | Action::FailingImage { .. } => None,
        }
    }

    /// One line for the timeline.
    pub fn describe(&self) -> String {
        match self {
            Action::Apply { file, name, .. } => format!("apply {file} ({name})"),
            Action::Delete { name } => format!("delete ShopRegion {name}"),
            Action::Set {
                names,
                field,
                value,
            } => format!("set {field} = {value} on {}", names.join(", ")),
            Action::Outage { region } => format!("region outage: {region} unreachable"),
            Action::Recover { region } => format!("{region} recovers: reachable, faults cleared"),
            Action::Throttle { region, calls } => {
                format!("AWS throttles the next {calls} calls in {region}")
            }
            Action::ServerErrors { region, calls } => {
                format!("AWS fails the next {calls} calls in {region} with HTTP 500")
            }
            Action::Timeouts { region, calls } => format!(
                "the next {calls} mutating AWS calls in {region} time out after taking effect"
            ),
            Action::Slow {
                region,
                operation,
                by,
            } => format!(
                "{} in {region} takes {} longer",
                operation.name(),
                format_duration(*by)
            ),
            Action::Lag { region, to } => {
                format!(
                    "replication lag of {region} rises to {}",
                    format_duration(*to)
                )
            }
            Action::LagEnds { region } => format!("replication lag of {region} back to normal"),
            Action::FailingImage { image } => format!("image {image} can no longer be pulled"),
            Action::ApiOutage { region } => format!(
                "the AWS APIs of {region} are unreachable; its databases and caches keep serving"
            ),
            Action::HealthCheck { region, down: true } => {
                format!("the health checks of {region} fail")
            }
            Action::HealthCheck {
                region,
                down: false,
            } => {
                format!("the health checks of {region} pass again")
            }
            Action::Partition { region, peer } => {
                format!("the network between {region} and {peer} is cut")
            }
        }
    }
}

/// What a run must show. Each is checked against the recorded run by
/// [`super::expect::evaluate`].
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Expectation {
    /// Every ShopRegion Ready at once, within this virtual time of the start.
    FleetReadyWithin(KubeDuration),
    /// Writer unavailable → new writer accepting writes, for the first
    /// writer change.
    RtoBelow(KubeDuration),
    /// Writes lost by the first writer change: the target's replication lag
    /// when it was promoted.
    RpoBelow(KubeDuration),
    /// Writer lost → the operator's `FailoverStarted` Event.
    DetectionBelow(KubeDuration),
    /// The part of the RTO the operator adds to AWS's promotion.
    OperatorAddedBelow(KubeDuration),
    /// No order Deployment changes its pod template once the fleet is
    /// Ready: a failover or a switchover creates no ReplicaSet and restarts
    /// no pod.
    NoRolloutAfterReady,
    /// Never two clusters accepting writes at once, and exactly one at the end.
    SingleWriter,
    /// The AWS region whose cluster is the writer at the end.
    WriterAtEnd(String),
    /// No failover and no switchover happened.
    NoWriterChange,
    /// The writer never moved back to a region it was failed over from.
    NoFailback,
    /// Every writer change lost nothing.
    NoDataLoss,
    /// The operator reported this reason (a condition or an Event) and no
    /// writer change followed.
    Refused(String),
    /// At the end, the ShopRegion is `Stalled=True` with this reason.
    Stalled(StalledExpectation),
    /// The API server refused the ShopRegion, naming this field.
    Rejected(RejectedExpectation),
    /// No AWS resource exists and no create call succeeded.
    NothingCreatedInAws,
    /// At most one global cluster per shop, one cluster per shop and region,
    /// and no more instances than the spec asks for.
    NoDuplicateResources,
    /// The operator posted an Event with this reason.
    Event(EventExpectation),
    /// Each of these regions raised its minimum replicas above where it
    /// started.
    CapacityRaised(Vec<String>),
    /// No region ever raised its minimum replicas above where it started:
    /// no absorbing minimum was held (the HPA would have scaled up to it
    /// and kept the pods through its scale-down window).
    CapacityNeverRaised,
    /// The state of one ShopRegion at the end.
    AtEnd(AtEndExpectation),
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StalledExpectation {
    pub shop_region: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RejectedExpectation {
    pub shop_region: String,
    pub field: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventExpectation {
    pub reason: String,
    /// Posted about this ShopRegion; any when absent.
    #[serde(default)]
    pub shop_region: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AtEndExpectation {
    pub shop_region: String,
    #[serde(default)]
    pub role: Option<RegionRole>,
    #[serde(default)]
    pub ready: Option<bool>,
}

impl Expectation {
    /// The ShopRegion the expectation is about, if it names one.
    pub fn shop_region(&self) -> Option<&str> {
        match self {
            Expectation::Stalled(s) => Some(&s.shop_region),
            Expectation::Rejected(r) => Some(&r.shop_region),
            Expectation::AtEnd(a) => Some(&a.shop_region),
            Expectation::Event(e) => e.shop_region.as_deref(),
            _ => None,
        }
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expectation::FleetReadyWithin(d) => write!(f, "fleetReadyWithin {d}"),
            Expectation::RtoBelow(d) => write!(f, "rtoBelow {d}"),
            Expectation::RpoBelow(d) => write!(f, "rpoBelow {d}"),
            Expectation::DetectionBelow(d) => write!(f, "detectionBelow {d}"),
            Expectation::OperatorAddedBelow(d) => write!(f, "operatorAddedBelow {d}"),
            Expectation::NoRolloutAfterReady => f.write_str("noRolloutAfterReady"),
            Expectation::SingleWriter => f.write_str("singleWriter"),
            Expectation::WriterAtEnd(r) => write!(f, "writerAtEnd {r}"),
            Expectation::NoWriterChange => f.write_str("noWriterChange"),
            Expectation::NoFailback => f.write_str("noFailback"),
            Expectation::NoDataLoss => f.write_str("noDataLoss"),
            Expectation::Refused(reason) => write!(f, "refused {reason}"),
            Expectation::Stalled(s) => write!(f, "stalled {} {}", s.shop_region, s.reason),
            Expectation::Rejected(r) => write!(f, "rejected {} {}", r.shop_region, r.field),
            Expectation::NothingCreatedInAws => f.write_str("nothingCreatedInAws"),
            Expectation::NoDuplicateResources => f.write_str("noDuplicateResources"),
            Expectation::Event(e) => match &e.shop_region {
                Some(name) => write!(f, "event {} on {name}", e.reason),
                None => write!(f, "event {}", e.reason),
            },
            Expectation::CapacityRaised(regions) => {
                write!(f, "capacityRaised {}", regions.join(", "))
            }
            Expectation::CapacityNeverRaised => f.write_str("capacityNeverRaised"),
            Expectation::AtEnd(a) => {
                write!(f, "atEnd {}", a.shop_region)?;
                if let Some(role) = a.role {
                    write!(f, " role {role:?}")?;
                }
                if let Some(ready) = a.ready {
                    write!(f, " ready {ready}")?;
                }
                Ok(())
            }
        }
    }
}

/// A scenario that cannot be run, with where and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct ScenarioError {
    pub origin: String,
    pub message: String,
}

/// The file as written, before manifests are loaded and steps checked.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawScenario {
    name: String,
    #[serde(default)]
    description: String,
    run_for: KubeDuration,
    #[serde(default)]
    deployment_ready_after: Option<KubeDuration>,
    #[serde(default)]
    durations: std::collections::BTreeMap<String, KubeDuration>,
    /// The account's network: inline (`{us-east-1: {subnetGroups: [...],
    /// securityGroups: [...]}}`) or the path of a file that holds it.
    #[serde(default)]
    account: Option<RawAccount>,
    steps: Vec<RawStep>,
    #[serde(default)]
    expect: Vec<Expectation>,
    /// The fleet form: this many shops, or these shops, each a renamed
    /// copy of the one shop the manifests describe.
    #[serde(default)]
    shops: Option<RawShops>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawShops {
    Count(usize),
    Names(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawAccount {
    File(String),
    Inline(BTreeMap<String, SimNetwork>),
}

/// One step as written: `at` and exactly one action.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawStep {
    at: KubeDuration,
    #[serde(default)]
    apply: Option<String>,
    #[serde(default)]
    delete: Option<String>,
    #[serde(default)]
    set: Option<RawSet>,
    #[serde(default)]
    outage: Option<String>,
    #[serde(default)]
    recover: Option<String>,
    #[serde(default)]
    throttle: Option<RawCounted>,
    #[serde(default)]
    server_errors: Option<RawCounted>,
    #[serde(default)]
    timeouts: Option<RawCounted>,
    #[serde(default)]
    slow: Option<RawSlow>,
    #[serde(default)]
    lag: Option<RawLag>,
    #[serde(default)]
    failing_image: Option<String>,
    #[serde(default)]
    api_outage: Option<String>,
    #[serde(default)]
    flap_health_check: Option<RawFlap>,
    #[serde(default)]
    partition: Option<RawPartition>,
}

/// A health check failing `down`, passing `up`, in turn, for `for`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawFlap {
    region: String,
    down: KubeDuration,
    up: KubeDuration,
    #[serde(rename = "for")]
    lasts: KubeDuration,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawPartition {
    region: String,
    peer: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSet {
    /// Every ShopRegion applied so far when absent.
    #[serde(default)]
    shop_regions: Option<Vec<String>>,
    field: String,
    value: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawCounted {
    region: String,
    calls: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSlow {
    region: String,
    operation: String,
    by: KubeDuration,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawLag {
    region: String,
    to: KubeDuration,
    #[serde(default, rename = "for")]
    lasts: Option<KubeDuration>,
}

const DEFAULT_DEPLOYMENT_READY_AFTER: Duration = Duration::from_secs(30);

impl Scenario {
    /// Reads a scenario file; manifests are read relative to its directory.
    pub fn from_file(path: &Path) -> Result<Scenario, ScenarioError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            origin: origin.clone(),
            message: format!("cannot read the scenario: {e}"),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Scenario::parse(&text, &origin, |file| {
            std::fs::read_to_string(base.join(file)).map_err(|e| e.to_string())
        })
    }

    /// Parses a scenario; `read` returns the text of a manifest named by an
    /// `apply` step (a path relative to the scenario).
    pub fn parse(
        text: &str,
        origin: &str,
        read: impl Fn(&str) -> Result<String, String>,
    ) -> Result<Scenario, ScenarioError> {
        let error = |message: String| ScenarioError {
            origin: origin.to_string(),
            message,
        };
        let raw: RawScenario = serde_saphyr::from_str(text).map_err(|e| error(e.to_string()))?;
        if raw.name.trim().is_empty() {
            return Err(error("name must not be empty".into()));
        }
        let run_for = raw.run_for.as_duration();
        if run_for.is_zero() {
            return Err(error("runFor must be longer than 0s".into()));
        }
        let mut durations = SimDurations::default();
        for (name, value) in &raw.durations {
            if !durations.set(name, value.as_duration()) {
                let known: Vec<&str> = durations.fields().into_iter().map(|(n, _)| n).collect();
                return Err(error(format!(
                    "durations.{name}: no such simulated duration; known: {}",
                    known.join(", ")
                )));
            }
        }
        let account = match raw.account {
            None => None,
            Some(RawAccount::Inline(regions)) => Some(regions),
            Some(RawAccount::File(path)) => {
                let text = read(&path).map_err(|e| error(format!("account {path}: {e}")))?;
                Some(
                    serde_saphyr::from_str(&text)
                        .map_err(|e| error(format!("account {path}: {e}")))?,
                )
            }
        };
        let mut applied: BTreeSet<String> = BTreeSet::new();
        let mut regions: BTreeSet<String> = BTreeSet::new();
        let mut steps = Vec::new();
        let mut previous_at = Duration::ZERO;
        for (index, raw_step) in raw.steps.into_iter().enumerate() {
            let at = raw_step.at.as_duration();
            let label = format!("step {} (at {})", index + 1, raw_step.at);
            let step_error = |message: String| error(format!("{label}: {message}"));
            if at < previous_at {
                return Err(step_error(format!(
                    "steps must be in time order; the previous step is at {}",
                    format_duration(previous_at)
                )));
            }
            if at > run_for {
                return Err(step_error(format!(
                    "comes after the end of the run (runFor {})",
                    raw.run_for
                )));
            }
            previous_at = at;
            for (later, action) in step_actions(raw_step, &read, &applied).map_err(step_error)? {
                if let Action::Apply { name, .. } = &action {
                    applied.insert(name.clone());
                    if let Some(region) = action.region() {
                        regions.insert(region.to_string());
                    }
                }
                steps.push(Step {
                    at: at + later,
                    action,
                });
            }
        }
        for step in &steps {
            if let Some(region) = step.action.region()
                && !matches!(step.action, Action::Apply { .. })
                && !regions.contains(region)
            {
                return Err(error(format!(
                    "a {} step names region {region}, which no applied ShopRegion runs in",
                    step.action.kind()
                )));
            }
        }
        // A `lag … for` adds its end later in time: keep the run in order.
        steps.sort_by_key(|s| s.at);
        for (index, expectation) in raw.expect.iter().enumerate() {
            check_expectation(expectation, &applied, &regions)
                .map_err(|m| error(format!("expect {}: {m}", index + 1)))?;
        }
        let fleet = match raw.shops {
            None => None,
            Some(shops) => {
                let fleet = fleet_of(shops, &steps).map_err(error)?;
                steps = steps
                    .into_iter()
                    .flat_map(|step| {
                        let at = step.at;
                        fleet
                            .expand(step.action)
                            .into_iter()
                            .map(move |action| Step { at, action })
                    })
                    .collect();
                Some(fleet)
            }
        };
        let mut shops: Vec<String> = Vec::new();
        let mut shop_of = std::collections::BTreeMap::new();
        for step in &steps {
            if let Action::Apply { name, object, .. } = &step.action
                && let Some(shop) = object.pointer("/spec/shop").and_then(Value::as_str)
            {
                if !shops.iter().any(|s| s == shop) {
                    shops.push(shop.to_string());
                }
                shop_of.insert(name.clone(), shop.to_string());
            }
        }
        Ok(Scenario {
            name: raw.name,
            description: raw.description.trim().to_string(),
            run_for,
            deployment_ready_after: raw
                .deployment_ready_after
                .map_or(DEFAULT_DEPLOYMENT_READY_AFTER, |d| d.as_duration()),
            durations,
            account,
            steps,
            expectations: raw.expect,
            fleet,
            shops,
            shop_of,
        })
    }
}

/// The fleet a `shops:` field asks for: the manifests must all describe
/// one shop, the template, and be named after it.
fn fleet_of(shops: RawShops, steps: &[Step]) -> Result<Fleet, String> {
    let mut templates = BTreeSet::new();
    for step in steps {
        if let Action::Apply { name, object, .. } = &step.action {
            let shop = object
                .pointer("/spec/shop")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("shops: the manifest of {name} names no spec.shop"))?;
            if !name.starts_with(&format!("{shop}-")) {
                return Err(format!(
                    "shops: {name} is not named <shop>-…, so its copies cannot be named per shop"
                ));
            }
            templates.insert(shop.to_string());
        }
    }
    let template = match templates.len() {
        1 => templates.pop_first().expect("one"),
        0 => return Err("shops: no step applies a ShopRegion to copy".into()),
        _ => {
            return Err(format!(
                "shops: the manifests describe {} shops ({}); the fleet form copies one",
                templates.len(),
                templates.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    };
    match shops {
        RawShops::Count(n) => Fleet::numbered(&template, n),
        RawShops::Names(names) => Fleet::named(&template, names),
    }
}

/// The actions of one step, each with its delay after the step's `at`: one
/// action, or two for a `lag` with `for` (the spike and its end).
fn step_actions(
    raw: RawStep,
    read: &impl Fn(&str) -> Result<String, String>,
    applied: &BTreeSet<String>,
) -> Result<Vec<(Duration, Action)>, String> {
    let given: Vec<&str> = [
        ("apply", raw.apply.is_some()),
        ("delete", raw.delete.is_some()),
        ("set", raw.set.is_some()),
        ("outage", raw.outage.is_some()),
        ("recover", raw.recover.is_some()),
        ("throttle", raw.throttle.is_some()),
        ("serverErrors", raw.server_errors.is_some()),
        ("timeouts", raw.timeouts.is_some()),
        ("slow", raw.slow.is_some()),
        ("lag", raw.lag.is_some()),
        ("failingImage", raw.failing_image.is_some()),
        ("apiOutage", raw.api_outage.is_some()),
        ("flapHealthCheck", raw.flap_health_check.is_some()),
        ("partition", raw.partition.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    match given.len() {
        0 => return Err("no action; a step does exactly one of apply, delete, set, outage, recover, throttle, serverErrors, timeouts, slow, lag, failingImage, apiOutage, flapHealthCheck, partition".into()),
        1 => {}
        _ => {
            return Err(format!(
                "{} given; a step does exactly one thing",
                given.join(" and ")
            ));
        }
    }
    let known = |name: &str| -> Result<(), String> {
        if applied.contains(name) {
            Ok(())
        } else {
            Err(format!(
                "ShopRegion {name} is not applied by an earlier step"
            ))
        }
    };
    let action = if let Some(file) = raw.apply {
        let text = read(&file).map_err(|e| format!("apply {file}: {e}"))?;
        let object: Value =
            serde_saphyr::from_str(&text).map_err(|e| format!("apply {file}: {e}"))?;
        if object.get("kind").and_then(Value::as_str) != Some("ShopRegion") {
            return Err(format!("apply {file}: not a ShopRegion manifest"));
        }
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("apply {file}: the manifest has no metadata.name"))?
            .to_string();
        Action::Apply { file, name, object }
    } else if let Some(name) = raw.delete {
        known(&name)?;
        Action::Delete { name }
    } else if let Some(set) = raw.set {
        check_field(&set.field).map_err(|m| format!("set.field: {m}"))?;
        let names = match set.shop_regions {
            Some(names) if names.is_empty() => {
                return Err(
                    "set.shopRegions: name at least one ShopRegion, or leave it out for all".into(),
                );
            }
            Some(names) => {
                for name in &names {
                    known(name).map_err(|m| format!("set.shopRegions: {m}"))?;
                }
                names
            }
            None if applied.is_empty() => {
                return Err("set: no ShopRegion is applied by an earlier step".into());
            }
            None => applied.iter().cloned().collect(),
        };
        Action::Set {
            names,
            field: set.field,
            value: set.value,
        }
    } else if let Some(region) = raw.outage {
        check_region(&region).map_err(|m| format!("outage: {m}"))?;
        Action::Outage { region }
    } else if let Some(region) = raw.recover {
        check_region(&region).map_err(|m| format!("recover: {m}"))?;
        Action::Recover { region }
    } else if let Some(c) = raw.throttle {
        let (region, calls) = counted(c).map_err(|m| format!("throttle.{m}"))?;
        Action::Throttle { region, calls }
    } else if let Some(c) = raw.server_errors {
        let (region, calls) = counted(c).map_err(|m| format!("serverErrors.{m}"))?;
        Action::ServerErrors { region, calls }
    } else if let Some(c) = raw.timeouts {
        let (region, calls) = counted(c).map_err(|m| format!("timeouts.{m}"))?;
        Action::Timeouts { region, calls }
    } else if let Some(slow) = raw.slow {
        check_region(&slow.region).map_err(|m| format!("slow.region: {m}"))?;
        let operation = Op::from_name(&slow.operation).ok_or_else(|| {
            let names: Vec<&str> = Op::ALL.iter().map(|op| op.name()).collect();
            format!(
                "slow.operation: unknown AWS operation {:?}; known: {}",
                slow.operation,
                names.join(", ")
            )
        })?;
        if slow.by.as_duration().is_zero() {
            return Err("slow.by must be longer than 0s".into());
        }
        Action::Slow {
            region: slow.region,
            operation,
            by: slow.by.as_duration(),
        }
    } else if let Some(lag) = raw.lag {
        check_region(&lag.region).map_err(|m| format!("lag.region: {m}"))?;
        let mut actions = vec![(
            Duration::ZERO,
            Action::Lag {
                region: lag.region.clone(),
                to: lag.to.as_duration(),
            },
        )];
        if let Some(lasts) = lag.lasts {
            if lasts.as_duration().is_zero() {
                return Err("lag.for must be longer than 0s".into());
            }
            actions.push((lasts.as_duration(), Action::LagEnds { region: lag.region }));
        }
        return Ok(actions);
    } else if let Some(region) = raw.api_outage {
        check_region(&region).map_err(|m| format!("apiOutage: {m}"))?;
        Action::ApiOutage { region }
    } else if let Some(flap) = raw.flap_health_check {
        return flap_actions(flap);
    } else if let Some(p) = raw.partition {
        check_region(&p.region).map_err(|m| format!("partition.region: {m}"))?;
        check_region(&p.peer).map_err(|m| format!("partition.peer: {m}"))?;
        if p.region == p.peer {
            return Err("partition: region and peer must differ".into());
        }
        Action::Partition {
            region: p.region,
            peer: p.peer,
        }
    } else if let Some(image) = raw.failing_image {
        if image.trim().is_empty() {
            return Err("failingImage must name an image".into());
        }
        Action::FailingImage { image }
    } else {
        unreachable!("exactly one action was counted above")
    };
    Ok(vec![(Duration::ZERO, action)])
}

/// The health check failing and passing in turn: one action per change.
fn flap_actions(flap: RawFlap) -> Result<Vec<(Duration, Action)>, String> {
    check_region(&flap.region).map_err(|m| format!("flapHealthCheck.region: {m}"))?;
    let (down, up, lasts) = (
        flap.down.as_duration(),
        flap.up.as_duration(),
        flap.lasts.as_duration(),
    );
    if down.is_zero() || up.is_zero() || lasts.is_zero() {
        return Err("flapHealthCheck: down, up and for must be longer than 0s".into());
    }
    let mut actions = Vec::new();
    let mut at = Duration::ZERO;
    while at < lasts {
        actions.push((
            at,
            Action::HealthCheck {
                region: flap.region.clone(),
                down: true,
            },
        ));
        at += down;
        actions.push((
            at.min(lasts),
            Action::HealthCheck {
                region: flap.region.clone(),
                down: false,
            },
        ));
        at += up;
    }
    Ok(actions)
}

fn counted(raw: RawCounted) -> Result<(String, u32), String> {
    check_region(&raw.region).map_err(|m| format!("region: {m}"))?;
    if raw.calls == 0 {
        return Err("calls must be at least 1".into());
    }
    Ok((raw.region, raw.calls))
}

/// An AWS region code such as `eu-west-1`.
fn check_region(region: &str) -> Result<(), String> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = (3..=4).contains(&parts.len())
        && parts[0].len() == 2
        && parts.iter().all(|p| !p.is_empty())
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{region:?} is not an AWS region code such as eu-west-1"
        ))
    }
}

/// A dotted path into the spec, such as `spec.failover.order`.
fn check_field(field: &str) -> Result<(), String> {
    let mut parts = field.split('.');
    if parts.next() != Some("spec") {
        return Err(format!(
            "{field:?} must start with spec. (the scenario changes what a user writes)"
        ));
    }
    let rest: Vec<&str> = parts.collect();
    if rest.is_empty()
        || rest.iter().any(|p| {
            p.is_empty()
                || !p.chars().all(|c| c.is_ascii_alphanumeric())
                || p.starts_with(|c: char| c.is_ascii_digit())
        })
    {
        return Err(format!(
            "{field:?} must be a dotted path of field names, such as spec.failover.order"
        ));
    }
    Ok(())
}

fn check_expectation(
    expectation: &Expectation,
    applied: &BTreeSet<String>,
    regions: &BTreeSet<String>,
) -> Result<(), String> {
    let shop_region = |name: &str| {
        if applied.contains(name) {
            Ok(())
        } else {
            Err(format!("ShopRegion {name} is not applied by any step"))
        }
    };
    let region = |name: &str| {
        if regions.contains(name) {
            Ok(())
        } else {
            Err(format!("no applied ShopRegion runs in region {name}"))
        }
    };
    match expectation {
        Expectation::Stalled(s) => shop_region(&s.shop_region),
        Expectation::Rejected(r) => shop_region(&r.shop_region),
        Expectation::AtEnd(a) => shop_region(&a.shop_region),
        Expectation::Event(e) => e.shop_region.as_deref().map_or(Ok(()), shop_region),
        Expectation::WriterAtEnd(r) => region(r),
        Expectation::CapacityRaised(list) if list.is_empty() => {
            Err("capacityRaised: name at least one region".into())
        }
        Expectation::CapacityRaised(list) => list.iter().try_for_each(|r| region(r)),
        Expectation::Refused(reason) if reason.is_empty() => Err("refused: name the reason".into()),
        _ => Ok(()),
    }
}

/// `1:05:03.2`, `4:07.0`, `12.5s` … as the timeline and reports show times.
pub fn format_duration(d: Duration) -> String {
    let tenths = d.as_millis().div_ceil(100) as u64;
    let secs = tenths / 10;
    let frac = tenths % 10;
    if secs < 60 {
        format!("{secs}.{frac}s")
    } else if secs < 3600 {
        format!("{}m{:02}.{frac}s", secs / 60, secs % 60)
    } else {
        format!(
            "{}h{:02}m{:02}.{frac}s",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        )
    }
}

/// Resolves `path` against `base` lexically (`..` removed), with `/`
/// separators: how embedded scenarios find their embedded manifests.
pub fn join_lexically(base: &str, path: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for component in PathBuf::from(base).join(path).components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(part) => out.push(part.to_string_lossy().into_owned()),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "apiVersion: shopfleet.io/v1alpha1\nkind: ShopRegion\nmetadata:\n  name: acme-us-east-1\nspec:\n  region: us-east-1\n";

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(text, "test.yaml", |file| match file {
            "acme.yaml" => Ok(SAMPLE.to_string()),
            other => Err(format!("no such file {other}")),
        })
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    const HEAD: &str = "name: t\nrunFor: 1h\nsteps:\n  - at: 0s\n    apply: acme.yaml\n";

    #[test]
    fn a_full_scenario_parses_into_timed_actions_and_expectations() {
        let scenario = parse(&format!(
            "{HEAD}  - at: 10m\n    outage: us-east-1\n  - at: 20m\n    lag: {{region: us-east-1, to: 45s, for: 5m}}\n  - at: 21m\n    set:\n      field: spec.failover.order\n      value: [eu-west-1, us-east-1]\n  - at: 30m\n    slow: {{region: us-east-1, operation: CreateDBInstance, by: 2m}}\ndurations:\n  globalFailover: 30s\ndeploymentReadyAfter: 1m\nexpect:\n  - singleWriter\n  - rtoBelow: 60s\n  - stalled: {{shopRegion: acme-us-east-1, reason: InvalidImage}}\n"
        ))
        .unwrap();
        assert_eq!(scenario.run_for, Duration::from_secs(3600));
        assert_eq!(scenario.deployment_ready_after, Duration::from_secs(60));
        assert_eq!(scenario.durations.global_failover, Duration::from_secs(30));
        let kinds: Vec<(u64, &str)> = scenario
            .steps
            .iter()
            .map(|s| (s.at.as_secs() / 60, s.action.kind()))
            .collect();
        assert_eq!(
            kinds,
            [
                (0, "apply"),
                (10, "outage"),
                (20, "lag"),
                (21, "set"),
                (25, "lagEnds"),
                (30, "slow")
            ]
        );
        let Action::Set { names, .. } = &scenario.steps[3].action else {
            panic!("a set step")
        };
        assert_eq!(
            names,
            &["acme-us-east-1"],
            "every applied ShopRegion by default"
        );
        assert_eq!(scenario.expectations.len(), 3);
        assert_eq!(scenario.expectations[0], Expectation::SingleWriter);
    }

    #[test]
    fn an_unknown_field_is_refused_with_its_name() {
        let message = error(&format!("{HEAD}  - at: 1m\n    outgae: us-east-1\n"));
        assert!(message.contains("outgae"), "{message}");
        let message = error("name: t\nrunFor: 1h\nsteps: []\nexpectations: []\n");
        assert!(message.contains("expectations"), "{message}");
    }

    #[test]
    fn a_step_does_exactly_one_thing() {
        let message = error(&format!(
            "{HEAD}  - at: 1m\n    outage: us-east-1\n    recover: us-east-1\n"
        ));
        assert!(message.contains("step 2 (at 1m)"), "{message}");
        assert!(message.contains("outage and recover given"), "{message}");
        let message = error(&format!("{HEAD}  - at: 1m\n"));
        assert!(message.contains("step 2 (at 1m): no action"), "{message}");
    }

    #[test]
    fn bad_values_name_the_step_and_the_field() {
        let cases = [
            (
                "  - at: 1m\n    outage: mars-1\n",
                "step 2 (at 1m): outage: \"mars-1\" is not an AWS region code",
            ),
            (
                "  - at: 1m\n    throttle: {region: us-east-1, calls: 0}\n",
                "throttle.calls must be at least 1",
            ),
            (
                "  - at: 1m\n    slow: {region: us-east-1, operation: Teleport, by: 1m}\n",
                "slow.operation: unknown AWS operation \"Teleport\"",
            ),
            (
                "  - at: 1m\n    delete: acme-eu-west-1\n",
                "ShopRegion acme-eu-west-1 is not applied by an earlier step",
            ),
            (
                "  - at: 1m\n    set: {field: metadata.labels, value: {}}\n",
                "set.field: \"metadata.labels\" must start with spec.",
            ),
            (
                "  - at: 2h\n    outage: us-east-1\n",
                "comes after the end of the run",
            ),
            (
                "  - at: 1m\n    apply: missing.yaml\n",
                "apply missing.yaml: no such file",
            ),
            (
                "  - at: 1m\n    outage: eu-west-1\n",
                "names region eu-west-1, which no applied ShopRegion runs in",
            ),
        ];
        for (step, expected) in cases {
            let message = error(&format!("{HEAD}{step}"));
            assert!(message.contains(expected), "{expected:?} not in {message}");
            assert!(message.starts_with("test.yaml: "), "{message}");
        }
    }

    #[test]
    fn steps_must_be_in_time_order() {
        let message = error(&format!(
            "{HEAD}  - at: 10m\n    outage: us-east-1\n  - at: 5m\n    recover: us-east-1\n"
        ));
        assert!(
            message.contains("step 3 (at 5m): steps must be in time order"),
            "{message}"
        );
    }

    #[test]
    fn a_bad_duration_or_an_unknown_simulated_duration_is_refused() {
        let message = error("name: t\nrunFor: soon\nsteps: []\n");
        assert!(message.contains("soon"), "{message}");
        let message = error(&format!("{HEAD}durations:\n  warpDrive: 1s\n"));
        assert!(
            message.contains("durations.warpDrive: no such simulated duration"),
            "{message}"
        );
        assert!(message.contains("globalFailover"), "{message}");
    }

    #[test]
    fn expectations_are_strict_and_name_known_shop_regions() {
        let message = error(&format!("{HEAD}expect:\n  - rtoBelow: fast\n"));
        assert!(message.contains("fast"), "{message}");
        let message = error(&format!("{HEAD}expect:\n  - splitBrain\n"));
        assert!(message.contains("splitBrain"), "{message}");
        let message = error(&format!(
            "{HEAD}expect:\n  - atEnd: {{shopRegion: acme-eu-west-1, role: Primary}}\n"
        ));
        assert!(
            message.contains("expect 1: ShopRegion acme-eu-west-1 is not applied"),
            "{message}"
        );
        let message = error(&format!("{HEAD}expect:\n  - writerAtEnd: eu-west-1\n"));
        assert!(
            message.contains("no applied ShopRegion runs in region eu-west-1"),
            "{message}"
        );
        let message = error(&format!(
            "{HEAD}expect:\n  - atEnd: {{shopRegion: acme-us-east-1, role: Leader}}\n"
        ));
        assert!(message.contains("Leader"), "{message}");
    }

    #[test]
    fn an_apply_needs_a_named_shop_region() {
        let result = Scenario::parse(HEAD, "t.yaml", |_| Ok("kind: ConfigMap\n".into()));
        assert!(
            result
                .unwrap_err()
                .message
                .contains("not a ShopRegion manifest")
        );
        let result = Scenario::parse(HEAD, "t.yaml", |_| Ok("kind: ShopRegion\n".into()));
        assert!(result.unwrap_err().message.contains("no metadata.name"));
    }

    #[test]
    fn durations_print_readably() {
        assert_eq!(format_duration(Duration::from_millis(150)), "0.2s");
        assert_eq!(format_duration(Duration::from_secs(92)), "1m32.0s");
        assert_eq!(format_duration(Duration::from_secs(3692)), "1h01m32.0s");
    }

    #[test]
    fn embedded_paths_resolve_lexically() {
        assert_eq!(
            join_lexically("samples/scenarios", "../acme-us-east-1.yaml"),
            "samples/acme-us-east-1.yaml"
        );
    }

    /// Two manifests of one shop and one of another, read by name.
    fn shop_manifest(file: &str) -> Result<String, String> {
        let (name, shop, region) = match file {
            "acme-us.yaml" => ("acme-us-east-1", "acme", "us-east-1"),
            "acme-eu.yaml" => ("acme-eu-west-1", "acme", "eu-west-1"),
            "globex-eu.yaml" => ("globex-eu-west-1", "globex", "eu-west-1"),
            other => return Err(format!("no such file {other}")),
        };
        Ok(format!(
            "kind: ShopRegion\nmetadata:\n  name: {name}\nspec:\n  shop: {shop}\n  region: {region}\n"
        ))
    }

    fn parse_shops(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(text, "fleet.yaml", shop_manifest)
    }

    const FLEET: &str = "name: f\nrunFor: 1h\nsteps:\n  - at: 0s\n    apply: acme-us.yaml\n  - at: 0s\n    apply: acme-eu.yaml\n  - at: 10m\n    outage: us-east-1\n  - at: 20m\n    delete: acme-eu-west-1\nexpect:\n  - singleWriter\n  - atEnd: {shopRegion: acme-us-east-1, ready: true}\n";

    #[test]
    fn shops_n_copies_every_step_on_a_shopregion_per_shop_and_keeps_region_steps_once() {
        let scenario = parse_shops(&format!("{FLEET}shops: 3\n")).unwrap();
        let fleet = scenario.fleet.as_ref().unwrap();
        assert_eq!(fleet.template, "acme");
        assert_eq!(scenario.shops, ["acme-1", "acme-2", "acme-3"]);
        let kinds: Vec<&str> = scenario.steps.iter().map(|s| s.action.kind()).collect();
        assert_eq!(
            kinds,
            [
                "apply", "apply", "apply", "apply", "apply", "apply", "outage", "delete", "delete",
                "delete"
            ]
        );
        assert_eq!(scenario.shop_of["acme-2-eu-west-1"], "acme-2");
        let Action::Apply { object, .. } = &scenario.steps[1].action else {
            panic!("an apply")
        };
        assert_eq!(object["spec"]["shop"], "acme-2");
        let for_three = scenario.expectations_for("acme-3");
        assert_eq!(
            for_three[1].as_ref().and_then(Expectation::shop_region),
            Some("acme-3-us-east-1")
        );
    }

    #[test]
    fn shops_may_be_listed_by_name() {
        let scenario = parse_shops(&format!("{FLEET}shops: [acme, initech]\n")).unwrap();
        assert_eq!(scenario.shops, ["acme", "initech"]);
        assert!(scenario.shop_of.contains_key("initech-us-east-1"));
    }

    #[test]
    fn the_fleet_form_copies_exactly_one_shop() {
        let two = "name: f\nrunFor: 1h\nshops: 2\nsteps:\n  - at: 0s\n    apply: acme-us.yaml\n  - at: 0s\n    apply: globex-eu.yaml\n";
        let message = parse_shops(two).unwrap_err().to_string();
        assert!(
            message.contains("describe 2 shops (acme, globex)"),
            "{message}"
        );
        let message = parse_shops(&format!("{FLEET}shops: 0\n"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("shops: between 1"), "{message}");
    }

    #[test]
    fn without_shops_an_expectation_about_a_shopregion_is_about_its_own_shop() {
        let text = "name: f\nrunFor: 1h\nsteps:\n  - at: 0s\n    apply: acme-us.yaml\n  - at: 0s\n    apply: globex-eu.yaml\nexpect:\n  - singleWriter\n  - atEnd: {shopRegion: globex-eu-west-1, role: Primary}\n";
        let scenario = parse_shops(text).unwrap();
        assert_eq!(scenario.fleet, None);
        assert_eq!(scenario.shops, ["acme", "globex"]);
        let for_acme = scenario.expectations_for("acme");
        assert_eq!(for_acme[0], Some(Expectation::SingleWriter));
        assert_eq!(for_acme[1], None);
        assert!(scenario.expectations_for("globex")[1].is_some());
    }
}
