//! What a run recorded: the timeline and the facts the figures and
//! expectations are computed from. [`Recorder`] is plain state fed by the
//! runner with observations stamped in virtual time; it does no I/O, so the
//! way observations become timeline entries is tested directly.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use super::scenario::Action;
use crate::api::ShopRegion;
use crate::api::conditions::types;
use crate::sim::cloud::FailoverRecord;

/// The kinds of timeline entries, as the JSON output names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EntryKind {
    /// A scenario step was carried out.
    Step,
    /// The API server refused a manifest.
    Rejected,
    /// The operator posted a Kubernetes Event.
    Event,
    /// A condition of a ShopRegion's status changed.
    Condition,
    /// A ShopRegion's role or writer region changed.
    Role,
    /// A ShopRegion's replica bounds changed.
    Capacity,
    /// An order Deployment got a new pod template: its pods roll.
    Rollout,
    /// The simulated AWS changed writer (a fact, not a report).
    Aws,
}

/// One line of the timeline.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    #[serde(rename = "atSeconds", serialize_with = "serialize_seconds")]
    pub at: Duration,
    pub region: Option<String>,
    pub shop_region: Option<String>,
    pub kind: EntryKind,
    /// A stable code: the condition or Event reason, the step kind, or one
    /// of `RoleChanged`, `CapacityChanged`, `WritersChanged`,
    /// `WriterChangeRequested`, `WriterChangeCompleted`, `Rejected`.
    pub reason: String,
    pub message: String,
    /// Something went wrong or got worse.
    pub warning: bool,
}

/// The set of AWS regions whose cluster accepted writes, from `at` on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WriterSample {
    #[serde(rename = "atSeconds", serialize_with = "serialize_seconds")]
    pub at: Duration,
    pub regions: Vec<String>,
}

/// A failover or switchover as the simulated AWS carried it out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsWriterChange {
    /// `failover` (data loss allowed) or `switchover`.
    pub kind: &'static str,
    pub from: String,
    pub to: String,
    #[serde(rename = "requestedAtSeconds", serialize_with = "serialize_seconds")]
    pub requested_at: Duration,
    #[serde(
        rename = "completedAtSeconds",
        serialize_with = "serialize_optional_seconds"
    )]
    pub completed_at: Option<Duration>,
    /// The target's replication lag when promoted: writes younger than this
    /// were lost.
    #[serde(rename = "dataLossSeconds", serialize_with = "serialize_seconds")]
    pub data_loss: Duration,
}

/// An apply the API server refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    pub shop_region: String,
    pub message: String,
}

/// How one region's minimum replicas moved during the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CapacityTrace {
    pub first_min_replicas: i32,
    pub highest_min_replicas: i32,
}

/// One ShopRegion at the end of the run, as the summary table shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionSummary {
    pub shop_region: String,
    pub region: String,
    pub role: Option<String>,
    pub writer_region: Option<String>,
    pub conditions: Vec<ConditionSummary>,
    pub replicas: Option<ReplicasSummary>,
    pub database: Option<StoreSummary>,
    pub cache: Option<StoreSummary>,
}

impl RegionSummary {
    pub fn condition(&self, type_: &str) -> Option<&ConditionSummary> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionSummary {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicasSummary {
    pub ready: i32,
    pub min: i32,
    pub max: i32,
    pub absorbing: bool,
}

/// The database or the cache of one region.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreSummary {
    /// `writer`/`secondary` for Aurora, `primary`/`secondary` for Redis.
    pub role: String,
    pub status: Option<String>,
    pub lag_seconds: Option<f64>,
}

/// What exists in the simulated AWS at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsInventory {
    pub global_clusters: Vec<GlobalClusterSummary>,
    pub clusters: Vec<ClusterSummary>,
    /// Create calls AWS carried out (whether or not the caller saw the answer).
    pub successful_creates: usize,
    /// Regions whose cluster accepts writes now.
    pub writers: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobalClusterSummary {
    pub id: String,
    pub shop: Option<String>,
    pub writer_region: Option<String>,
    pub members: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSummary {
    pub region: String,
    pub id: String,
    pub shop: Option<String>,
    pub instances: usize,
}

/// Calls the simulated AWS answered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsCalls {
    pub mutating: usize,
    pub reads: usize,
    pub failed: usize,
    pub by_operation: BTreeMap<String, usize>,
}

/// Everything a run recorded; the input of figures and expectations.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    #[serde(rename = "endSeconds", serialize_with = "serialize_seconds")]
    pub end: Duration,
    pub timeline: Vec<Entry>,
    #[serde(
        rename = "fleetReadyAtSeconds",
        serialize_with = "serialize_optional_seconds"
    )]
    pub fleet_ready_at: Option<Duration>,
    pub writer_history: Vec<WriterSample>,
    pub writer_changes: Vec<AwsWriterChange>,
    pub rejections: Vec<Rejection>,
    /// By AWS region.
    pub capacity: BTreeMap<String, CapacityTrace>,
    /// Spec `database.readers` of each ShopRegion at the end, by name.
    #[serde(skip)]
    pub readers_wanted: BTreeMap<String, u8>,
    pub regions: Vec<RegionSummary>,
    pub aws: AwsInventory,
    pub kube_writes: BTreeMap<String, u64>,
    pub aws_calls: AwsCalls,
    /// Every pod template each order Deployment had, in order: each one is a
    /// ReplicaSet the Deployment controller creates and rolls pods into.
    pub pod_templates: BTreeMap<String, Vec<PodTemplate>>,
    /// What each region's cache primary name (its ExternalName Service)
    /// pointed at, in order.
    pub cache_primary_names: BTreeMap<String, Vec<NamedHost>>,
}

/// The label that names a child's AWS region.
const REGION_LABEL: &str = "shopfleet.io/region";

/// One pod template of an order Deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    #[serde(rename = "atSeconds", serialize_with = "serialize_seconds")]
    pub at: Duration,
    pub region: Option<String>,
    /// The database writer the pods reach (`DATABASE_WRITER_ENDPOINT`).
    pub database_writer: Option<String>,
    #[serde(skip)]
    pub digest: String,
}

/// A stable name and the host it pointed at from `at` on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedHost {
    #[serde(rename = "atSeconds", serialize_with = "serialize_seconds")]
    pub at: Duration,
    pub region: Option<String>,
    pub host: String,
}

impl Record {
    pub fn entries_with_reason<'a>(&'a self, reason: &'a str) -> impl Iterator<Item = &'a Entry> {
        self.timeline.iter().filter(move |e| e.reason == reason)
    }
}

/// What the recorder remembers of a ShopRegion to tell what changed.
#[derive(Clone, Debug, Default, PartialEq)]
struct Digest {
    region: String,
    /// Type → (status, reason, message); `Reconciling` left out, it flips
    /// on every bit of progress.
    conditions: BTreeMap<String, (String, String, String)>,
    role: Option<String>,
    writer_region: Option<String>,
    /// (min, max, absorbing), once the workload reported.
    capacity: Option<(i32, i32, bool)>,
}

fn digest(region: &ShopRegion) -> Digest {
    let status = region.status.clone().unwrap_or_default();
    Digest {
        region: region.spec.region.clone(),
        conditions: status
            .conditions
            .iter()
            .filter(|c| c.type_ != types::RECONCILING)
            .map(|c| {
                (
                    c.type_.clone(),
                    (c.status.clone(), c.reason.clone(), c.message.clone()),
                )
            })
            .collect(),
        role: status.role.map(|r| format!("{r:?}")),
        writer_region: status.writer_region.clone(),
        capacity: status
            .orders
            .as_ref()
            .filter(|o| o.max_replicas > 0)
            .map(|o| (o.min_replicas, o.max_replicas, o.absorbing)),
    }
}

/// A change worth a timeline line: kind, reason, message, warning.
type Change = (EntryKind, String, String, bool);

/// The timeline lines between two states of one ShopRegion. A condition
/// is news when its status changes, or its reason while it is in a bad
/// state; a condition first appearing in its good state is not news, and
/// neither is `Ready` staying False for another reason (the concern
/// condition that holds it back says why).
fn changes(before: Option<&Digest>, after: &Digest) -> Vec<Change> {
    let mut out = Vec::new();
    let empty = Digest::default();
    let before = before.unwrap_or(&empty);
    for (type_, (status, reason, message)) in &after.conditions {
        let previous = before.conditions.get(type_);
        let bad = if type_ == types::STALLED {
            status == "True"
        } else {
            status != "True"
        };
        let news = match previous {
            None => bad,
            Some((s, _, _)) if type_ == types::READY => s != status,
            // FailoverReady's reason tells the failover story (a writer
            // watched, counted down, lost) even while it stays True.
            Some((s, r, _)) => {
                s != status || ((bad || type_ == types::FAILOVER_READY) && r != reason)
            }
        };
        if !news {
            continue;
        }
        let mut text = format!("{type_}={status} ({reason})");
        if type_ == types::STALLED && status == "True" {
            text.push_str(": ");
            text.push_str(message);
        }
        out.push((EntryKind::Condition, reason.clone(), text, bad));
    }
    if (after.role.is_some() || after.writer_region.is_some())
        && (before.role != after.role || before.writer_region != after.writer_region)
    {
        let text = format!(
            "role {}, writer {}",
            after.role.as_deref().unwrap_or("-"),
            after.writer_region.as_deref().unwrap_or("-")
        );
        out.push((EntryKind::Role, "RoleChanged".into(), text, false));
    }
    if let Some((min, max, absorbing)) = after.capacity
        && before.capacity != after.capacity
    {
        let mut text = format!("replicas min {min}, max {max}");
        if absorbing {
            text.push_str(", absorbing a lost region");
        }
        out.push((EntryKind::Capacity, "CapacityChanged".into(), text, false));
    }
    out
}

/// Turns observations into the run's record.
pub struct Recorder {
    start: Timestamp,
    timeline: Vec<Entry>,
    shop_regions: BTreeMap<String, Digest>,
    /// The ShopRegions the scenario applied (and did not delete): the
    /// fleet whose readiness is measured.
    fleet: BTreeSet<String>,
    /// ShopRegion name → AWS region, from what was applied.
    region_of: BTreeMap<String, String>,
    fleet_ready_at: Option<Duration>,
    events_seen: BTreeSet<String>,
    /// Per ShopRegion, the Event messages recorded since its status last
    /// changed.
    events_since_change: BTreeMap<String, BTreeSet<String>>,
    writers: Vec<WriterSample>,
    changes_requested: usize,
    changes_completed: BTreeSet<usize>,
    writer_changes: Vec<AwsWriterChange>,
    rejections: Vec<Rejection>,
    capacity: BTreeMap<String, CapacityTrace>,
    pod_templates: BTreeMap<String, Vec<PodTemplate>>,
    cache_primary_names: BTreeMap<String, Vec<NamedHost>>,
}

impl Recorder {
    /// `start` is the virtual instant of time zero.
    pub fn new(start: Timestamp) -> Self {
        Self {
            start,
            timeline: Vec::new(),
            shop_regions: BTreeMap::new(),
            fleet: BTreeSet::new(),
            region_of: BTreeMap::new(),
            fleet_ready_at: None,
            events_seen: BTreeSet::new(),
            events_since_change: BTreeMap::new(),
            writers: Vec::new(),
            changes_requested: 0,
            changes_completed: BTreeSet::new(),
            writer_changes: Vec::new(),
            rejections: Vec::new(),
            capacity: BTreeMap::new(),
            pod_templates: BTreeMap::new(),
            cache_primary_names: BTreeMap::new(),
        }
    }

    /// An order Deployment as the API server returned it: a pod template
    /// not seen before is a new ReplicaSet, and its pods restart.
    pub fn deployment(&mut self, at: Duration, object: &Deployment) {
        let name = object.name_any();
        let template = &object.spec.template;
        let digest = serde_json::to_string(template).unwrap_or_default();
        let database_writer = template
            .spec
            .as_ref()
            .and_then(|p| p.containers.first())
            .and_then(|c| c.env.as_ref())
            .and_then(|env| env.iter().find(|e| e.name == "DATABASE_WRITER_ENDPOINT"))
            .and_then(|e| e.value.clone());
        let history = self.pod_templates.entry(name.clone()).or_default();
        if history.last().is_some_and(|last| last.digest == digest) {
            return;
        }
        let first = history.is_empty();
        let region = object.labels().get(REGION_LABEL).cloned();
        history.push(PodTemplate {
            at,
            region: region.clone(),
            database_writer,
            digest,
        });
        if !first {
            self.push(Entry {
                at,
                region,
                shop_region: None,
                kind: EntryKind::Rollout,
                reason: "PodTemplateChanged".into(),
                message: format!("{name}: a new pod template, so a new ReplicaSet and a rollout"),
                warning: false,
            });
        }
    }

    /// A region's cache primary name (an ExternalName Service).
    pub fn cache_primary_name(&mut self, at: Duration, object: &Service) {
        let Some(host) = object.spec.as_ref().and_then(|s| s.external_name.clone()) else {
            return;
        };
        let history = self
            .cache_primary_names
            .entry(object.name_any())
            .or_default();
        if history.last().is_some_and(|last| last.host == host) {
            return;
        }
        history.push(NamedHost {
            at,
            region: object.labels().get(REGION_LABEL).cloned(),
            host,
        });
    }

    /// Virtual time since the start.
    pub fn offset(&self, at: Timestamp) -> Duration {
        Duration::try_from(at.duration_since(self.start)).unwrap_or_default()
    }

    /// Entries recorded so far, from `from` on (for live progress).
    pub fn entries_since(&self, from: usize) -> &[Entry] {
        self.timeline.get(from..).unwrap_or_default()
    }

    pub fn entry_count(&self) -> usize {
        self.timeline.len()
    }

    fn push(&mut self, entry: Entry) {
        self.timeline.push(entry);
    }

    /// A scenario step was carried out at `at`.
    pub fn step(&mut self, at: Duration, action: &Action) {
        match action {
            Action::Apply { name, object, .. } => {
                self.fleet.insert(name.clone());
                if let Some(region) = object.pointer("/spec/region").and_then(|r| r.as_str()) {
                    self.region_of.insert(name.clone(), region.to_string());
                }
            }
            Action::Delete { name } => {
                self.fleet.remove(name);
            }
            _ => {}
        }
        let shop_region = match action {
            Action::Apply { name, .. } | Action::Delete { name } => Some(name.clone()),
            _ => None,
        };
        let region = action.region().map(str::to_string).or_else(|| {
            shop_region
                .as_ref()
                .and_then(|n| self.region_of.get(n).cloned())
        });
        let warning = matches!(
            action,
            Action::Outage { .. }
                | Action::Throttle { .. }
                | Action::ServerErrors { .. }
                | Action::Timeouts { .. }
                | Action::Slow { .. }
                | Action::Lag { .. }
                | Action::FailingImage { .. }
        );
        self.push(Entry {
            at,
            region,
            shop_region,
            kind: EntryKind::Step,
            reason: action.kind().to_string(),
            message: action.describe(),
            warning,
        });
    }

    /// The API server refused the manifest of `name`.
    pub fn rejected(&mut self, at: Duration, name: &str, message: &str) {
        if !self.shop_regions.contains_key(name) {
            // Refused at creation: it never joined the fleet.
            self.fleet.remove(name);
        }
        self.rejections.push(Rejection {
            shop_region: name.to_string(),
            message: message.to_string(),
        });
        self.push(Entry {
            at,
            region: self.region_of.get(name).cloned(),
            shop_region: Some(name.to_string()),
            kind: EntryKind::Rejected,
            reason: "Rejected".into(),
            message: format!("the API server refused {name}: {message}"),
            warning: true,
        });
    }

    /// A ShopRegion as the API server returned it.
    pub fn shop_region(&mut self, at: Duration, object: &ShopRegion) {
        let name = object.name_any();
        let after = digest(object);
        self.region_of.insert(name.clone(), after.region.clone());
        let lines = changes(self.shop_regions.get(&name), &after);
        if !lines.is_empty() {
            self.events_since_change.remove(&name);
        }
        for (kind, reason, message, warning) in lines {
            self.push(Entry {
                at,
                region: Some(after.region.clone()),
                shop_region: Some(name.clone()),
                kind,
                reason,
                message,
                warning,
            });
        }
        if let Some((min, _, _)) = after.capacity {
            let trace = self
                .capacity
                .entry(after.region.clone())
                .or_insert(CapacityTrace {
                    first_min_replicas: min,
                    highest_min_replicas: min,
                });
            trace.highest_min_replicas = trace.highest_min_replicas.max(min);
        }
        self.shop_regions.insert(name, after);
        self.check_fleet_ready(at);
    }

    pub fn shop_region_deleted(&mut self, at: Duration, name: &str) {
        if let Some(gone) = self.shop_regions.remove(name) {
            self.push(Entry {
                at,
                region: Some(gone.region),
                shop_region: Some(name.to_string()),
                kind: EntryKind::Condition,
                reason: "Deleted".into(),
                message: "ShopRegion deleted".into(),
                warning: false,
            });
        }
    }

    /// The fleet is Ready when every ShopRegion the scenario applied is.
    fn check_fleet_ready(&mut self, at: Duration) {
        if self.fleet_ready_at.is_some() || self.fleet.is_empty() {
            return;
        }
        let all_ready = self.fleet.iter().all(|name| {
            self.shop_regions.get(name).is_some_and(|d| {
                d.conditions
                    .get(types::READY)
                    .is_some_and(|(status, _, _)| status == "True")
            })
        });
        if all_ready {
            self.fleet_ready_at = Some(at);
        }
    }

    /// An Event as the API server returned it. A repeat of an Event already
    /// seen (a new count in its series) adds nothing, and neither does the
    /// Event the operator posts for a condition transition: the condition
    /// line already tells it.
    pub fn event(&mut self, at: Duration, event: &KubeEvent) {
        let key = event
            .metadata
            .uid
            .clone()
            .unwrap_or_else(|| event.name_any());
        if !self.events_seen.insert(key) {
            return;
        }
        let reason = event.reason.clone().unwrap_or_default();
        let note = event.note.clone().unwrap_or_default();
        let name = event
            .regarding
            .as_ref()
            .and_then(|r| r.name.clone())
            .unwrap_or_default();
        // The controller's transition Events read "<Type> is <Status>: …".
        let is_transition = types::ALL.iter().any(|type_| {
            ["True", "False", "Unknown"]
                .iter()
                .any(|status| note.starts_with(&format!("{type_} is {status}:")))
        });
        let message = format!("{reason}: {note}");
        // The same Event again while nothing else changed for the
        // ShopRegion (the operator re-posts on every poll during an
        // outage, say) adds nothing.
        let repeat = !self
            .events_since_change
            .entry(name.clone())
            .or_default()
            .insert(message.clone());
        if is_transition || repeat {
            return;
        }
        self.push(Entry {
            at,
            region: self.region_of.get(&name).cloned(),
            shop_region: (!name.is_empty()).then_some(name),
            kind: EntryKind::Event,
            reason,
            message,
            warning: event.type_.as_deref() == Some("Warning"),
        });
    }

    /// What the simulated AWS shows at `at`: the regions whose cluster
    /// accepts writes, and every failover or switchover so far.
    pub fn aws(&mut self, at: Duration, writers: Vec<String>, failovers: &[FailoverRecord]) {
        for (index, record) in failovers.iter().enumerate().skip(self.changes_requested) {
            let kind = if record.allow_data_loss {
                "failover"
            } else {
                "switchover"
            };
            let requested_at = self.offset(record.requested_at);
            self.writer_changes.push(AwsWriterChange {
                kind,
                from: record.from_region.clone(),
                to: record.to_region.clone(),
                requested_at,
                completed_at: None,
                data_loss: record.data_loss_window,
            });
            self.push(Entry {
                at: requested_at,
                region: Some(record.to_region.clone()),
                shop_region: None,
                kind: EntryKind::Aws,
                reason: "WriterChangeRequested".into(),
                message: format!(
                    "AWS starts a {kind} of {}: writer {} → {}",
                    record.global_cluster_id, record.from_region, record.to_region
                ),
                warning: false,
            });
            self.changes_requested = index + 1;
        }
        for (index, record) in failovers.iter().enumerate() {
            let Some(completed) = record.completed_at else {
                continue;
            };
            if !self.changes_completed.insert(index) {
                continue;
            }
            let completed_at = self.offset(completed);
            if let Some(change) = self.writer_changes.get_mut(index) {
                change.completed_at = Some(completed_at);
            }
            self.push(Entry {
                at: completed_at,
                region: Some(record.to_region.clone()),
                shop_region: None,
                kind: EntryKind::Aws,
                reason: "WriterChangeCompleted".into(),
                message: format!(
                    "{} promoted: writer of {}; data at risk {}",
                    record.to_region,
                    record.global_cluster_id,
                    super::scenario::format_duration(record.data_loss_window)
                ),
                warning: false,
            });
        }
        let mut writers = writers;
        writers.sort();
        let previous = self.writers.last().map(|w| &w.regions);
        if previous != Some(&writers) && !(previous.is_none() && writers.is_empty()) {
            let message = if writers.is_empty() {
                "no cluster accepts writes".to_string()
            } else {
                format!("{} accepts writes", writers.join(" and "))
            };
            self.push(Entry {
                at,
                region: (writers.len() == 1).then(|| writers[0].clone()),
                shop_region: None,
                kind: EntryKind::Aws,
                reason: "WritersChanged".into(),
                message,
                warning: writers.len() != 1,
            });
            self.writers.push(WriterSample {
                at,
                regions: writers,
            });
        }
    }

    /// The record, with the final state the runner read at `end`.
    pub fn finish(mut self, end: Duration, last: FinalState) -> Record {
        self.timeline.sort_by_key(|e| e.at);
        Record {
            end,
            timeline: self.timeline,
            fleet_ready_at: self.fleet_ready_at,
            writer_history: self.writers,
            writer_changes: self.writer_changes,
            rejections: self.rejections,
            capacity: self.capacity,
            readers_wanted: last.readers_wanted,
            regions: last.regions,
            aws: last.aws,
            kube_writes: last.kube_writes,
            aws_calls: last.aws_calls,
            pod_templates: self.pod_templates,
            cache_primary_names: self.cache_primary_names,
        }
    }
}

/// What the runner reads once the run is over.
#[derive(Clone, Debug, Default)]
pub struct FinalState {
    pub regions: Vec<RegionSummary>,
    pub readers_wanted: BTreeMap<String, u8>,
    pub aws: AwsInventory,
    pub kube_writes: BTreeMap<String, u64>,
    pub aws_calls: AwsCalls,
}

/// The summary row of a ShopRegion.
pub fn summarize_region(region: &ShopRegion) -> RegionSummary {
    let status = region.status.clone().unwrap_or_default();
    RegionSummary {
        shop_region: region.name_any(),
        region: region.spec.region.clone(),
        role: status.role.map(|r| format!("{r:?}")),
        writer_region: status.writer_region.clone(),
        conditions: status
            .conditions
            .iter()
            .map(|c| ConditionSummary {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
            })
            .collect(),
        replicas: status.orders.as_ref().map(|o| ReplicasSummary {
            ready: o.ready_replicas,
            min: o.min_replicas,
            max: o.max_replicas,
            absorbing: o.absorbing,
        }),
        database: status.database.as_ref().map(|d| StoreSummary {
            role: if d.writer { "writer" } else { "secondary" }.into(),
            status: d.cluster_status.clone(),
            lag_seconds: d.replication_lag_seconds,
        }),
        cache: status.cache.as_ref().map(|c| StoreSummary {
            role: if c.primary { "primary" } else { "secondary" }.into(),
            status: c.replication_group_status.clone(),
            lag_seconds: c.replication_lag_seconds,
        }),
    }
}

pub(super) fn serialize_seconds<S: serde::Serializer>(
    d: &Duration,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

pub(super) fn serialize_optional_seconds<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::Status;
    use crate::api::{OrdersStatus, RegionRole, ShopRegionStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    fn region(name: &str, aws: &str) -> ShopRegion {
        let mut r = ShopRegion::new(name, crate::api::fixtures::acme(aws));
        r.metadata.namespace = Some("shop".into());
        r
    }

    fn condition(type_: &str, status: Status, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.as_str().into(),
            reason: reason.into(),
            message: format!("{type_} message"),
            observed_generation: None,
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::UNIX_EPOCH,
            ),
        }
    }

    fn with_status(mut r: ShopRegion, conditions: Vec<Condition>, min: i32) -> ShopRegion {
        r.status = Some(ShopRegionStatus {
            conditions,
            role: Some(RegionRole::Secondary),
            writer_region: Some("us-east-1".into()),
            orders: Some(OrdersStatus {
                min_replicas: min,
                max_replicas: 50,
                ..Default::default()
            }),
            ..Default::default()
        });
        r
    }

    fn start() -> Timestamp {
        Timestamp::from_second(1_735_689_600).unwrap()
    }

    #[test]
    fn condition_changes_become_lines_and_unchanged_ones_do_not() {
        let mut rec = Recorder::new(start());
        let first = with_status(
            region("acme-eu-west-1", "eu-west-1"),
            vec![
                condition(types::READY, Status::False, "Creating"),
                condition(types::RECONCILING, Status::True, "Creating"),
            ],
            14,
        );
        rec.shop_region(Duration::from_secs(1), &first);
        let kinds: Vec<EntryKind> = rec.timeline.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [EntryKind::Condition, EntryKind::Role, EntryKind::Capacity],
            "Reconciling is left out"
        );
        rec.shop_region(Duration::from_secs(2), &first);
        assert_eq!(rec.timeline.len(), 3, "nothing changed, nothing added");
        let ready = with_status(
            region("acme-eu-west-1", "eu-west-1"),
            vec![condition(types::READY, Status::True, "Ready")],
            21,
        );
        rec.shop_region(Duration::from_secs(3), &ready);
        let last: Vec<&str> = rec.timeline[3..]
            .iter()
            .map(|e| e.message.as_str())
            .collect();
        assert_eq!(last, ["Ready=True (Ready)", "replicas min 21, max 50"]);
        assert_eq!(
            rec.capacity["eu-west-1"],
            CapacityTrace {
                first_min_replicas: 14,
                highest_min_replicas: 21
            }
        );
    }

    fn apply(name: &str, aws: &str) -> Action {
        Action::Apply {
            file: format!("{name}.yaml"),
            name: name.into(),
            object: serde_json::json!({"spec": {"region": aws}}),
        }
    }

    #[test]
    fn the_fleet_is_ready_when_every_applied_shop_region_is_ready_at_once() {
        let mut rec = Recorder::new(start());
        rec.step(Duration::ZERO, &apply("acme-us-east-1", "us-east-1"));
        rec.step(Duration::ZERO, &apply("acme-eu-west-1", "eu-west-1"));
        rec.step(Duration::ZERO, &apply("bad", "eu-west-1"));
        rec.rejected(
            Duration::ZERO,
            "bad",
            "spec.database.engine: Unsupported value",
        );
        let ready = |name: &str, aws: &str| {
            with_status(
                region(name, aws),
                vec![condition(types::READY, Status::True, "Ready")],
                14,
            )
        };
        let waiting = with_status(
            region("acme-eu-west-1", "eu-west-1"),
            vec![condition(types::READY, Status::False, "Joining")],
            14,
        );
        rec.shop_region(
            Duration::from_secs(10),
            &ready("acme-us-east-1", "us-east-1"),
        );
        assert_eq!(rec.fleet_ready_at, None, "eu-west-1 not seen yet");
        rec.shop_region(Duration::from_secs(11), &waiting);
        assert_eq!(rec.fleet_ready_at, None);
        rec.shop_region(
            Duration::from_secs(90),
            &ready("acme-eu-west-1", "eu-west-1"),
        );
        assert_eq!(
            rec.fleet_ready_at,
            Some(Duration::from_secs(90)),
            "a refused manifest is not part of the fleet"
        );
    }

    #[test]
    fn transition_events_and_repeats_are_left_to_the_condition_lines() {
        let mut rec = Recorder::new(start());
        rec.shop_region(
            Duration::ZERO,
            &with_status(
                region("acme-us-east-1", "us-east-1"),
                vec![condition(types::DATABASE_READY, Status::False, "Creating")],
                14,
            ),
        );
        let before = rec.timeline.len();
        let event = |uid: &str, reason: &str, note: &str| KubeEvent {
            metadata: kube::api::ObjectMeta {
                uid: Some(uid.into()),
                ..Default::default()
            },
            reason: Some(reason.into()),
            note: Some(note.into()),
            type_: Some("Normal".into()),
            regarding: Some(k8s_openapi::api::core::v1::ObjectReference {
                name: Some("acme-us-east-1".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        rec.event(
            Duration::from_secs(5),
            &event("1", "Creating", "DatabaseReady is False: creating"),
        );
        rec.event(
            Duration::from_secs(5),
            &event(
                "2",
                "CreatingPrimaryCluster",
                "create cluster acme-us-east-1",
            ),
        );
        rec.event(
            Duration::from_secs(6),
            &event(
                "2",
                "CreatingPrimaryCluster",
                "create cluster acme-us-east-1",
            ),
        );
        rec.event(
            Duration::from_secs(7),
            &event("3", "RegionUnavailable", "cannot reach the cache endpoint"),
        );
        rec.event(
            Duration::from_secs(8),
            &event(
                "4",
                "CreatingPrimaryCluster",
                "create cluster acme-us-east-1",
            ),
        );
        let added: Vec<&Entry> = rec.timeline[before..].iter().collect();
        assert_eq!(added.len(), 2, "{added:#?}");
        assert_eq!(added[0].reason, "CreatingPrimaryCluster");
        assert_eq!(added[0].region.as_deref(), Some("us-east-1"));
    }

    #[test]
    fn aws_writer_changes_are_stamped_with_the_times_aws_recorded() {
        let mut rec = Recorder::new(start());
        rec.aws(Duration::from_secs(600), vec!["us-east-1".into()], &[]);
        rec.aws(Duration::from_secs(3600), vec![], &[]);
        let mut record = FailoverRecord {
            global_cluster_id: "acme-global".into(),
            from_region: "us-east-1".into(),
            to_region: "eu-west-1".into(),
            allow_data_loss: true,
            requested_at: start()
                .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(3632))
                .unwrap(),
            completed_at: None,
            data_loss_window: Duration::from_millis(150),
        };
        rec.aws(Duration::from_secs(3632), vec![], &[record.clone()]);
        record.completed_at = Some(
            start()
                .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(3692))
                .unwrap(),
        );
        rec.aws(
            Duration::from_secs(3692),
            vec!["eu-west-1".into()],
            &[record.clone()],
        );
        rec.aws(
            Duration::from_secs(3700),
            vec!["eu-west-1".into()],
            &[record],
        );
        let result = rec.finish(Duration::from_secs(4000), FinalState::default());
        assert_eq!(
            result.writer_changes,
            [AwsWriterChange {
                kind: "failover",
                from: "us-east-1".into(),
                to: "eu-west-1".into(),
                requested_at: Duration::from_secs(3632),
                completed_at: Some(Duration::from_secs(3692)),
                data_loss: Duration::from_millis(150),
            }]
        );
        let samples: Vec<(u64, usize)> = result
            .writer_history
            .iter()
            .map(|w| (w.at.as_secs(), w.regions.len()))
            .collect();
        assert_eq!(samples, [(600, 1), (3600, 0), (3692, 1)]);
        let reasons: Vec<&str> = result.timeline.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "WritersChanged",
                "WritersChanged",
                "WriterChangeRequested",
                "WriterChangeCompleted",
                "WritersChanged"
            ]
        );
    }
}
