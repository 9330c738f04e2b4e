//! Logs, Prometheus metrics, and the probe/metrics HTTP endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tower::{Layer, Service};

use crate::api::{Detection, FailoverKind, FailoverResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global tracing subscriber. `RUST_LOG` overrides the default
/// filter, which keeps dependencies quiet; whatever it says, the AWS SDK's
/// request dumps stay off (see [`without_request_bodies`]).
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn,hyper=warn"));
    // Colours only for a person at a terminal: `kubectl logs`, files and
    // log shippers get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.finish().with(without_request_bodies()).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .finish()
            .with(without_request_bodies())
            .try_init(),
    };
    // A second init (tests, simulate inside a test) keeps the first subscriber.
    drop(result);
}

/// Where the AWS SDK prints whole requests in `trace` events, and the body
/// of CreateReplicationGroup holds the Redis AUTH token: aws-sigv4 prints
/// the body it signs when `LOG_SIGNABLE_BODY=true` (a switch for debugging
/// signatures), and the orchestrator prints the request it transmits (its
/// body only while nothing has wrapped it; today the SDK's stalled-stream
/// protection does).
const REQUEST_DUMPS: [&str; 2] = ["aws_smithy_runtime::client::orchestrator", "aws_sigv4"];

/// A filter that drops the `trace` events of [`REQUEST_DUMPS`], so that no
/// `RUST_LOG` can put a credential sent to AWS into the logs. Their `debug`
/// and higher events (attempts, retries, errors) stay.
pub fn without_request_bodies<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber,
{
    tracing_subscriber::filter::filter_fn(|metadata| {
        *metadata.level() != tracing::Level::TRACE
            || !REQUEST_DUMPS.iter().any(|target| {
                metadata
                    .target()
                    .strip_prefix(target)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
    })
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabels {
    pub verb: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub verb: &'static str,
    /// The resource written, with its subresource (`shopregions/status`),
    /// so that the leader Lease's renewals are told from reconcile writes.
    pub resource: String,
}

/// One shop, as the failover metrics count it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShopLabels {
    pub namespace: String,
    pub shop: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailoverStartLabels {
    pub namespace: String,
    pub shop: String,
    /// `failover` or `switchover`.
    pub kind: &'static str,
    /// How the writer's loss was detected: `confirmed`, `sustained`, or
    /// `planned` for a switchover.
    pub detection: &'static str,
}

/// The `detection` label of a started failover or switchover.
pub fn detection_label(detection: Option<Detection>) -> &'static str {
    detection.map_or("planned", Detection::word)
}

const DETECTION_LABELS: [&str; 3] = ["confirmed", "sustained", "planned"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailoverLabels {
    pub namespace: String,
    pub shop: String,
    /// `failover` or `switchover`.
    pub kind: &'static str,
    /// `completed`, `abandoned`, `superseded` or `refused`.
    pub result: &'static str,
}

/// One ShopRegion object.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShopRegionLabels {
    pub namespace: String,
    pub name: String,
    pub shop: String,
    pub region: String,
}

impl ShopRegionLabels {
    pub fn of(region: &crate::api::ShopRegion) -> Self {
        use kube::ResourceExt as _;
        Self {
            namespace: region.namespace().unwrap_or_default(),
            name: region.name_any(),
            shop: region.spec.shop.clone(),
            region: region.spec.region.clone(),
        }
    }

    pub fn shop(&self) -> ShopLabels {
        ShopLabels {
            namespace: self.namespace.clone(),
            shop: self.shop.clone(),
        }
    }
}

/// `shopfleet_shopregion_condition`: one row per ShopRegion, written out
/// as its series (7 types, 3 statuses) at each scrape. Kept as a `Family`,
/// each of a thousand shops' 63,000 series held a hashed key and a gauge of
/// its own, some 10 MB of the operator's memory; a row is its labels once
/// and one byte per type.
#[derive(Debug, Default)]
pub struct ConditionTable {
    /// By (namespace, name), so that a scrape lists them in a stable order.
    rows: std::sync::RwLock<std::collections::BTreeMap<(String, String), ConditionRow>>,
}

#[derive(Debug)]
struct ConditionRow {
    shop: String,
    region: String,
    /// Per type of [`crate::api::conditions::types::ALL`], its current
    /// status as an index into [`CONDITION_STATUSES`]; `None` before the
    /// type is reported (no series rather than three zeros that would read
    /// as "not True").
    statuses: [Option<u8>; crate::api::conditions::types::ALL.len()],
}

impl ConditionTable {
    /// Records the ShopRegion's conditions as they stand.
    pub fn report(
        &self,
        labels: &ShopRegionLabels,
        conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    ) {
        let statuses = crate::api::conditions::types::ALL.map(|type_| {
            let current = conditions.iter().find(|c| c.type_ == type_)?;
            CONDITION_STATUSES
                .iter()
                .position(|s| *s == current.status)
                .and_then(|i| u8::try_from(i).ok())
        });
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        let key = (labels.namespace.clone(), labels.name.clone());
        match rows.get_mut(&key) {
            Some(row) => {
                row.statuses = statuses;
                if row.shop != labels.shop || row.region != labels.region {
                    row.shop.clone_from(&labels.shop);
                    row.region.clone_from(&labels.region);
                }
            }
            None => {
                rows.insert(
                    key,
                    ConditionRow {
                        shop: labels.shop.clone(),
                        region: labels.region.clone(),
                        statuses,
                    },
                );
            }
        }
    }

    /// A deleted ShopRegion: its series go.
    pub fn forget(&self, labels: &ShopRegionLabels) {
        self.rows
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(labels.namespace.clone(), labels.name.clone()));
    }
}

const CONDITION_FAMILY: &str = "shopfleet_shopregion_condition";

impl ConditionTable {
    fn write_descriptor(out: &mut String) {
        out.push_str(concat!(
            "# HELP shopfleet_shopregion_condition 1 for the current status of each ",
            "condition type of a ShopRegion, 0 for the other statuses\n",
            "# TYPE shopfleet_shopregion_condition gauge\n",
        ));
    }

    /// Appends the series of the rows after `after` (all of them for
    /// `None`) until `out` holds `bytes`. Returns the last row written when
    /// it stopped for the size, `None` once no row is left. The lock is
    /// held for one piece only: a scrape never holds up a reconcile that
    /// reports its conditions for longer than one piece takes to write.
    fn write_rows_after(
        &self,
        after: Option<&(String, String)>,
        out: &mut String,
        bytes: usize,
    ) -> Option<(String, String)> {
        use std::ops::Bound;
        let rows = self.rows.read().unwrap_or_else(|e| e.into_inner());
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        for (key, row) in rows.range::<(String, String), _>((start, Bound::Unbounded)) {
            let (namespace, name) = key;
            for (type_, current) in crate::api::conditions::types::ALL.iter().zip(row.statuses) {
                let Some(current) = current else {
                    continue;
                };
                for (i, status) in CONDITION_STATUSES.iter().enumerate() {
                    out.push_str(CONDITION_FAMILY);
                    for (separator, label, value) in [
                        ("{", "namespace", namespace.as_str()),
                        (",", "name", name.as_str()),
                        (",", "shop", row.shop.as_str()),
                        (",", "region", row.region.as_str()),
                        (",", "type", *type_),
                        (",", "status", *status),
                    ] {
                        out.push_str(separator);
                        out.push_str(label);
                        out.push_str("=\"");
                        push_label_value(out, value);
                        out.push('"');
                    }
                    out.push_str(if usize::from(current) == i {
                        "} 1\n"
                    } else {
                        "} 0\n"
                    });
                }
            }
            if out.len() >= bytes {
                return Some(key.clone());
            }
        }
        None
    }
}

/// A label value as OpenMetrics escapes it.
fn push_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// One scrape of `/metrics`, in pieces: the registry's families in one
/// (a few series per ShopRegion, some 0.7 MB at 3,000 ShopRegions), then the
/// ShopRegions' conditions (21 series each) in pieces of about
/// [`EXPOSITION_PIECE_BYTES`], then `# EOF`. Written at once, the conditions
/// of a thousand shops are 11 MB of text built for every scrape on top of
/// everything the operator holds.
pub struct Exposition<M> {
    metrics: M,
    next: ExpositionPart,
}

enum ExpositionPart {
    Registry,
    ConditionsAfter(Option<(String, String)>),
    Done,
}

/// Big enough that a piece is a handful of rows, small enough to stay in
/// the heap's recycled blocks rather than a mapping of its own.
const EXPOSITION_PIECE_BYTES: usize = 64 * 1024;

impl<M: std::ops::Deref<Target = Metrics>> Exposition<M> {
    pub fn new(metrics: M) -> Self {
        Self {
            metrics,
            next: ExpositionPart::Registry,
        }
    }
}

impl<M: std::ops::Deref<Target = Metrics>> Iterator for Exposition<M> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        match std::mem::replace(&mut self.next, ExpositionPart::Done) {
            ExpositionPart::Registry => {
                let mut out = String::new();
                prometheus_client::encoding::text::encode_registry(
                    &mut out,
                    &self.metrics.registry,
                )
                .expect("writing to a String cannot fail");
                ConditionTable::write_descriptor(&mut out);
                self.next = ExpositionPart::ConditionsAfter(None);
                Some(out)
            }
            ExpositionPart::ConditionsAfter(after) => {
                // Room for the last row past the mark without growing.
                let mut out = String::with_capacity(EXPOSITION_PIECE_BYTES + 16 * 1024);
                match self.metrics.conditions.write_rows_after(
                    after.as_ref(),
                    &mut out,
                    EXPOSITION_PIECE_BYTES,
                ) {
                    Some(last) => self.next = ExpositionPart::ConditionsAfter(Some(last)),
                    None => out.push_str("# EOF\n"),
                }
                Some(out)
            }
            ExpositionPart::Done => None,
        }
    }
}

/// A region of a shop, as the health sampler sees it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShopRegionKey {
    pub shop: String,
    pub region: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AwsRequestLabels {
    /// `rds`, `elasticache` or `cloudwatch`.
    pub service: String,
    pub operation: String,
    pub region: String,
    /// `ok`, `throttled` or `error`.
    pub outcome: &'static str,
}

const CONDITION_STATUSES: [&str; 3] = ["True", "False", "Unknown"];
const FAILOVER_KINDS: [FailoverKind; 3] = [
    FailoverKind::Failover,
    FailoverKind::Switchover,
    FailoverKind::CacheFollow,
];
const FAILOVER_RESULTS: [&str; 4] = ["completed", "abandoned", "superseded", "refused"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

/// Buckets of `shopfleet_failover_duration_seconds`: 5 s to about 85 min,
/// around the one-minute RTO target.
fn failover_duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(5.0, 2.0, 11))
}

/// Every metric shopfleet exports. One instance per process, shared by the
/// controllers of every ShopRegion it reconciles.
pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<ResultLabels, Counter>,
    pub reconcile_duration: Histogram,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub kube_writes: Family<WriteLabels, Counter>,
    /// The same writes by verb alone, for in-process readers (not exported).
    kube_writes_by_verb: Family<VerbLabels, Counter>,
    pub leader: Gauge,
    pub failovers_started: Family<FailoverStartLabels, Counter>,
    pub failovers: Family<FailoverLabels, Counter>,
    pub failover_duration: Family<KindLabels, Histogram, fn() -> Histogram>,
    pub failover_refused: Family<ShopRegionLabels, Gauge>,
    pub replication_lag: Family<ShopRegionKey, Gauge<f64, AtomicU64>>,
    pub replication_lag_budget: Family<ShopRegionKey, Gauge<f64, AtomicU64>>,
    pub conditions: ConditionTable,
    pub aws_requests: Family<AwsRequestLabels, Counter>,
    /// The shops with failover series, so that they can be summed and
    /// removed (a `Family` cannot be iterated).
    known_shops: std::sync::Mutex<std::collections::HashSet<ShopLabels>>,
    /// Reconciles of each live ShopRegion, by `namespace/name`, for tests
    /// and measurements in the process (not exported: the total and the
    /// conditions already tell an operator what it needs).
    reconciles_by_object: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("shopfleet");
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles of ShopRegions, by result",
            reconciles.clone(),
        );
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one ShopRegion reconcile",
            reconcile_duration.clone(),
        );
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Failed reconciles, by error category",
            reconcile_errors.clone(),
        );
        let kube_writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "kube_writes",
            "Write requests sent to the Kubernetes API, by verb and resource (leases: leader election)",
            kube_writes.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this instance holds the leader lease",
            leader.clone(),
        );
        let failovers_started = Family::<FailoverStartLabels, Counter>::default();
        registry.register(
            "failovers_started",
            "Failovers and switchovers recorded (intent stored before the first cloud call), by shop and kind",
            failovers_started.clone(),
        );
        let failovers = Family::<FailoverLabels, Counter>::default();
        registry.register(
            "failovers",
            "Failovers and switchovers, by kind and result (refused: a needed failover the policy forbade)",
            failovers.clone(),
        );
        let failover_duration =
            Family::<KindLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                failover_duration_histogram,
            );
        registry.register(
            "failover_duration_seconds",
            "Time from recording a failover or switchover to its completion",
            failover_duration.clone(),
        );
        let failover_refused = Family::<ShopRegionLabels, Gauge>::default();
        registry.register(
            "failover_refused",
            "1 while a failover this ShopRegion would carry out is refused by its policy (RPO budget, unknown lag, disagreeing policies)",
            failover_refused.clone(),
        );
        let replication_lag = Family::<ShopRegionKey, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "replication_lag_seconds",
            "Last known Aurora replication lag of a secondary region of a shop behind its writer",
            replication_lag.clone(),
        );
        let replication_lag_budget = Family::<ShopRegionKey, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "replication_lag_budget_seconds",
            "The RPO budget of a region of a shop (spec.failover.maxReplicationLag)",
            replication_lag_budget.clone(),
        );
        // Not in the registry: its series are written a few rows at a time
        // (`Exposition`).
        let conditions = ConditionTable::default();
        let aws_requests = Family::<AwsRequestLabels, Counter>::default();
        registry.register(
            "aws_requests",
            "AWS API requests (each attempt), by service, operation, region and outcome (ok, throttled, error)",
            aws_requests.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_duration,
            reconcile_errors,
            kube_writes,
            kube_writes_by_verb: Family::default(),
            leader,
            failovers_started,
            failovers,
            failover_duration,
            failover_refused,
            replication_lag,
            replication_lag_budget,
            conditions,
            aws_requests,
            known_shops: Default::default(),
            reconciles_by_object: Default::default(),
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// The whole exposition in one string, as a scrape reads it.
    pub fn encode(&self) -> String {
        Exposition::new(self).collect()
    }

    pub fn observe_reconcile(&self, elapsed: Duration, error_category: Option<&'static str>) {
        self.reconcile_duration.observe(elapsed.as_secs_f64());
        let result = if error_category.is_some() {
            "error"
        } else {
            "ok"
        };
        self.reconciles
            .get_or_create(&ResultLabels { result })
            .inc();
        if let Some(category) = error_category {
            self.reconcile_errors
                .get_or_create(&ErrorLabels { category })
                .inc();
        }
    }

    /// Counts a reconcile of the ShopRegion `key` (`namespace/name`).
    pub fn count_reconcile_of(&self, key: &str) {
        *self
            .reconciles_by_object
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_string())
            .or_default() += 1;
    }

    /// Reconciles of one ShopRegion so far (0 once it is deleted).
    pub fn reconciles_of(&self, namespace: &str, name: &str) -> u64 {
        self.reconciles_by_object
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&format!("{namespace}/{name}"))
            .copied()
            .unwrap_or(0)
    }

    pub fn reconciles_total(&self) -> u64 {
        ["ok", "error"]
            .iter()
            .map(|result| {
                self.reconciles
                    .get_or_create(&ResultLabels { result })
                    .get()
            })
            .sum()
    }

    /// Kubernetes writes of one verb, every resource together.
    pub fn kube_writes_by(&self, verb: &'static str) -> u64 {
        self.kube_writes_by_verb
            .get_or_create(&VerbLabels { verb })
            .get()
    }

    /// Kubernetes writes of one verb to one resource (`shopregions/status`).
    pub fn kube_writes_to(&self, verb: &'static str, resource: &str) -> u64 {
        self.kube_writes
            .get_or_create(&WriteLabels {
                verb,
                resource: resource.to_string(),
            })
            .get()
    }

    fn count_kube_write(&self, verb: &'static str, resource: String) {
        self.kube_writes
            .get_or_create(&WriteLabels { verb, resource })
            .inc();
        self.kube_writes_by_verb
            .get_or_create(&VerbLabels { verb })
            .inc();
    }

    /// Counts a promotion whose intent was just stored.
    pub fn record_failover_started(
        &self,
        shop: &ShopLabels,
        kind: FailoverKind,
        detection: Option<Detection>,
    ) {
        self.remember_shop(shop);
        self.failovers_started
            .get_or_create(&FailoverStartLabels {
                namespace: shop.namespace.clone(),
                shop: shop.shop.clone(),
                kind: kind.word(),
                detection: detection_label(detection),
            })
            .inc();
    }

    /// Counts a recorded failover or switchover once it ends; with
    /// `Completed`, also observes its duration.
    pub fn record_failover(
        &self,
        shop: &ShopLabels,
        kind: FailoverKind,
        result: FailoverResult,
        duration: Option<Duration>,
    ) {
        self.remember_shop(shop);
        self.failovers
            .get_or_create(&failover_labels(shop, kind, result.metric_label()))
            .inc();
        if let (FailoverResult::Completed, Some(duration)) = (result, duration) {
            self.failover_duration
                .get_or_create(&KindLabels { kind: kind.word() })
                .observe(duration.as_secs_f64());
        }
    }

    /// Counts a failover the policy refused. Call it when the refusal
    /// begins (the `FailoverReady` condition turning to the refusal reason),
    /// not on every reconcile that still refuses.
    pub fn record_refused_failover(&self, shop: &ShopLabels) {
        self.remember_shop(shop);
        self.failovers
            .get_or_create(&failover_labels(shop, FailoverKind::Failover, "refused"))
            .inc();
    }

    /// Failovers of `kind` that ended with `result`, every shop together.
    pub fn failovers_by(&self, kind: FailoverKind, result: &'static str) -> u64 {
        let mut total = 0;
        self.each_failover_series(|labels| {
            if labels.kind == kind.word() && labels.result == result {
                total += self.failovers.get_or_create(labels).get();
            }
        });
        total
    }

    fn remember_shop(&self, shop: &ShopLabels) {
        self.known_shops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(shop.clone());
    }

    fn each_failover_series(&self, mut f: impl FnMut(&FailoverLabels)) {
        let shops = self
            .known_shops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for shop in &shops {
            for kind in FAILOVER_KINDS {
                for result in FAILOVER_RESULTS {
                    f(&failover_labels(shop, kind, result));
                }
            }
        }
    }

    /// Sets a region's replication lag; `None` (the writer, or no reading)
    /// removes the series rather than reporting a made-up zero.
    pub fn set_replication_lag(&self, shop: &str, region: &str, lag: Option<Duration>) {
        let labels = ShopRegionKey {
            shop: shop.to_string(),
            region: region.to_string(),
        };
        match lag {
            Some(lag) => {
                self.replication_lag
                    .get_or_create(&labels)
                    .set(lag.as_secs_f64());
            }
            None => {
                self.replication_lag.remove(&labels);
            }
        }
    }

    /// What one reconcile of a ShopRegion reports about it: its conditions
    /// (one series per type and status, the current one at 1), its RPO
    /// budget and whether its failover is refused.
    pub fn report_shopregion(
        &self,
        labels: &ShopRegionLabels,
        conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
        lag_budget: Duration,
        refused: bool,
    ) {
        self.remember_shop(&labels.shop());
        self.conditions.report(labels, conditions);
        self.replication_lag_budget
            .get_or_create(&ShopRegionKey {
                shop: labels.shop.clone(),
                region: labels.region.clone(),
            })
            .set(lag_budget.as_secs_f64());
        self.failover_refused
            .get_or_create(labels)
            .set(i64::from(refused));
    }

    /// A deleted ShopRegion: its series go. `last_of_shop` also removes the
    /// shop's failover counters.
    pub fn forget_shopregion(&self, labels: &ShopRegionLabels, last_of_shop: bool) {
        self.conditions.forget(labels);
        let key = ShopRegionKey {
            shop: labels.shop.clone(),
            region: labels.region.clone(),
        };
        self.replication_lag_budget.remove(&key);
        self.replication_lag.remove(&key);
        self.failover_refused.remove(labels);
        self.reconciles_by_object
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&format!("{}/{}", labels.namespace, labels.name));
        if last_of_shop {
            let shop = labels.shop();
            for kind in FAILOVER_KINDS {
                for detection in DETECTION_LABELS {
                    self.failovers_started.remove(&FailoverStartLabels {
                        namespace: shop.namespace.clone(),
                        shop: shop.shop.clone(),
                        kind: kind.word(),
                        detection,
                    });
                }
                for result in FAILOVER_RESULTS {
                    self.failovers.remove(&failover_labels(&shop, kind, result));
                }
            }
            self.known_shops
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&shop);
        }
    }

    /// Counts one AWS request attempt.
    pub fn record_aws_request(
        &self,
        service: &str,
        operation: &str,
        region: &str,
        outcome: &'static str,
    ) {
        self.aws_requests
            .get_or_create(&AwsRequestLabels {
                service: service.to_ascii_lowercase(),
                operation: operation.to_string(),
                region: region.to_string(),
                outcome,
            })
            .inc();
    }
}

fn failover_labels(shop: &ShopLabels, kind: FailoverKind, result: &'static str) -> FailoverLabels {
    FailoverLabels {
        namespace: shop.namespace.clone(),
        shop: shop.shop.clone(),
        kind: kind.word(),
        result,
    }
}

/// The resource a Kubernetes API path addresses, with its subresource:
/// `/apis/shopfleet.io/v1alpha1/namespaces/shop/shopregions/x/status` is
/// `shopregions/status`.
pub fn kube_resource(path: &str) -> String {
    let segments: Vec<&str> = path
        .split('?')
        .next()
        .unwrap_or_default()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    // /api/v1/... or /apis/group/version/...
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..),
        Some(&"apis") => segments.get(3..),
        _ => None,
    }
    .unwrap_or_default();
    let rest = match rest {
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    match rest {
        [] => "unknown".into(),
        [resource] | [resource, _] => (*resource).to_string(),
        [resource, _, sub, ..] => format!("{resource}/{sub}"),
    }
}

/// The Kubernetes verb of a request, from its HTTP method; `None` for reads.
pub fn write_verb(method: &http::Method) -> Option<&'static str> {
    match *method {
        http::Method::POST => Some("create"),
        http::Method::PUT => Some("update"),
        http::Method::PATCH => Some("patch"),
        http::Method::DELETE => Some("delete"),
        _ => None,
    }
}

/// A tower layer for the kube client that counts every write request, so that
/// "a converged reconcile writes nothing" is visible in production, not only
/// in tests.
#[derive(Clone)]
pub struct CountWritesLayer {
    metrics: Arc<Metrics>,
}

impl CountWritesLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for CountWritesLayer {
    type Service = CountWrites<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountWrites {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct CountWrites<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B> Service<http::Request<B>> for CountWrites<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if let Some(verb) = write_verb(request.method()) {
            self.metrics
                .count_kube_write(verb, kube_resource(request.uri().path()));
        }
        self.inner.call(request)
    }
}

/// Builds a kube client from a config with write counting.
pub fn counting_client(
    config: kube::Config,
    metrics: Arc<Metrics>,
) -> Result<kube::Client, kube::Error> {
    let builder = kube::client::ClientBuilder::try_from(config)?;
    Ok(builder.with_layer(&CountWritesLayer::new(metrics)).build())
}

/// Readiness as the probe endpoint reports it.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }
    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct ProbeState {
    metrics: Arc<Metrics>,
    readiness: Readiness,
}

pub fn router(metrics: Arc<Metrics>, readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(ProbeState { metrics, readiness })
}

async fn readyz(State(state): State<ProbeState>) -> impl IntoResponse {
    if state.readiness.get() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

async fn metrics_text(State(state): State<ProbeState>) -> impl IntoResponse {
    let pieces = Exposition::new(state.metrics).map(Ok::<_, std::convert::Infallible>);
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        axum::body::Body::from_stream(futures::stream::iter(pieces)),
    )
}

/// Serves the probes and metrics until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    extra: Option<Router>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let routes = match extra {
        Some(extra) => router(metrics, readiness).merge(extra),
        None => router(metrics, readiness),
    };
    axum::serve(listener, routes)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mutating_methods_count_as_writes() {
        assert_eq!(write_verb(&http::Method::GET), None);
        assert_eq!(write_verb(&http::Method::PATCH), Some("patch"));
        assert_eq!(write_verb(&http::Method::POST), Some("create"));
        assert_eq!(write_verb(&http::Method::DELETE), Some("delete"));
        assert_eq!(write_verb(&http::Method::PUT), Some("update"));
    }

    #[test]
    fn metrics_are_exported_with_the_shopfleet_prefix() {
        let metrics = Metrics::default();
        metrics.observe_reconcile(Duration::from_millis(20), Some("kube"));
        metrics.count_kube_write("patch", "shopregions/status".into());
        let text = metrics.encode();
        assert!(text.contains("shopfleet_reconciles_total{result=\"error\"} 1"));
        assert!(text.contains("shopfleet_reconcile_errors_total{category=\"kube\"} 1"));
        assert!(text.contains(
            "shopfleet_kube_writes_total{verb=\"patch\",resource=\"shopregions/status\"} 1"
        ));
        assert!(text.contains("shopfleet_reconcile_duration_seconds_bucket"));
        assert_eq!(metrics.kube_writes_by("patch"), 1);
    }

    #[test]
    fn a_write_is_labelled_with_the_resource_and_subresource_it_addresses() {
        let cases = [
            (
                "/apis/shopfleet.io/v1alpha1/namespaces/shop/shopregions/acme-eu/status",
                "shopregions/status",
            ),
            (
                "/apis/shopfleet.io/v1alpha1/namespaces/shop/shopregions/acme-eu",
                "shopregions",
            ),
            (
                "/apis/coordination.k8s.io/v1/namespaces/ops/leases/shopfleet-leader",
                "leases",
            ),
            ("/apis/events.k8s.io/v1/namespaces/shop/events", "events"),
            (
                "/api/v1/namespaces/shop/configmaps/acme?fieldManager=x",
                "configmaps",
            ),
            ("/api/v1/namespaces/shop", "namespaces"),
            ("/version", "unknown"),
        ];
        for (path, resource) in cases {
            assert_eq!(kube_resource(path), resource, "{path}");
        }
    }

    fn shop(name: &str) -> ShopLabels {
        ShopLabels {
            namespace: "shop".into(),
            shop: name.into(),
        }
    }

    #[test]
    fn failover_metrics_are_exported_under_their_documented_names() {
        let metrics = Metrics::default();
        let acme = shop("acme");
        metrics.record_failover_started(&acme, FailoverKind::Failover, Some(Detection::Confirmed));
        metrics.record_failover(
            &acme,
            FailoverKind::Failover,
            FailoverResult::Completed,
            Some(Duration::from_secs(62)),
        );
        metrics.record_failover(
            &acme,
            FailoverKind::Switchover,
            FailoverResult::Superseded,
            None,
        );
        metrics.record_refused_failover(&acme);
        metrics.set_replication_lag("acme", "eu-west-1", Some(Duration::from_millis(250)));
        let text = metrics.encode();
        assert!(
            text.contains("shopfleet_failovers_started_total{namespace=\"shop\",shop=\"acme\",kind=\"failover\",detection=\"confirmed\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("shopfleet_failovers_total{namespace=\"shop\",shop=\"acme\",kind=\"failover\",result=\"completed\"} 1"),
            "{text}"
        );
        assert!(text.contains(
            "shopfleet_failovers_total{namespace=\"shop\",shop=\"acme\",kind=\"switchover\",result=\"superseded\"} 1"
        ));
        assert!(text.contains(
            "shopfleet_failovers_total{namespace=\"shop\",shop=\"acme\",kind=\"failover\",result=\"refused\"} 1"
        ));
        assert!(
            text.contains("shopfleet_failover_duration_seconds_sum{kind=\"failover\"} 62.0"),
            "{text}"
        );
        assert!(
            text.contains(
                "shopfleet_replication_lag_seconds{shop=\"acme\",region=\"eu-west-1\"} 0.25"
            ),
            "{text}"
        );
        assert_eq!(metrics.failovers_by(FailoverKind::Failover, "completed"), 1);
    }

    #[test]
    fn two_shops_in_one_region_keep_their_own_lag() {
        let metrics = Metrics::default();
        metrics.set_replication_lag("acme", "eu-west-1", Some(Duration::from_secs(1)));
        metrics.set_replication_lag("globex", "eu-west-1", Some(Duration::from_secs(7)));
        let text = metrics.encode();
        assert!(
            text.contains(
                "shopfleet_replication_lag_seconds{shop=\"acme\",region=\"eu-west-1\"} 1.0"
            )
        );
        assert!(text.contains(
            "shopfleet_replication_lag_seconds{shop=\"globex\",region=\"eu-west-1\"} 7.0"
        ));
    }

    #[test]
    fn a_region_without_a_lag_reading_has_no_lag_series() {
        let metrics = Metrics::default();
        metrics.set_replication_lag("acme", "eu-west-1", Some(Duration::from_secs(1)));
        metrics.set_replication_lag("acme", "eu-west-1", None);
        assert!(!metrics.encode().contains("region=\"eu-west-1\""));
    }

    fn condition(
        type_: &str,
        status: &str,
    ) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: type_.into(),
            status: status.into(),
            reason: "Test".into(),
            message: String::new(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
            observed_generation: None,
        }
    }

    fn labels_of(name: &str) -> ShopRegionLabels {
        let (shop, region) = name.split_at(name.find('-').unwrap());
        ShopRegionLabels {
            namespace: "shops".into(),
            name: name.into(),
            shop: shop.into(),
            region: region[1..].into(),
        }
    }

    fn condition_series_of(text: &str, name: &str) -> usize {
        let marker = format!("name=\"{name}\",");
        text.lines()
            .filter(|l| l.starts_with("shopfleet_shopregion_condition{") && l.contains(&marker))
            .count()
    }

    #[test]
    fn a_scrape_reads_each_shopregion_once_while_they_come_and_go() {
        let metrics = Metrics::default();
        let ready = [condition("Ready", "True")];
        for i in 0..2000 {
            metrics.report_shopregion(
                &labels_of(&format!("s{i:04}-eu-west-1")),
                &ready,
                Duration::from_secs(30),
                false,
            );
        }
        let mut scrape = Exposition::new(&metrics);
        let mut text: String = scrape.by_ref().take(3).collect();
        // The row the last piece ended on goes, one comes before the
        // pieces already sent and one after.
        let last_sent = text
            .lines()
            .last()
            .and_then(|l| l.split("name=\"").nth(1))
            .map(|l| l[..l.find('"').unwrap()].to_string())
            .unwrap();
        metrics.forget_shopregion(&labels_of(&last_sent), false);
        metrics.report_shopregion(
            &labels_of("s0000a-eu-west-1"),
            &ready,
            Duration::from_secs(30),
            false,
        );
        metrics.report_shopregion(
            &labels_of("s9999-eu-west-1"),
            &ready,
            Duration::from_secs(30),
            false,
        );
        text.extend(scrape);

        let series = text
            .lines()
            .filter(|l| l.starts_with("shopfleet_shopregion_condition{"))
            .count();
        assert_eq!(
            series,
            (2000 + 1) * 3,
            "each row once, the new later one too"
        );
        assert_eq!(
            condition_series_of(&text, &last_sent),
            3,
            "sent once, before it went"
        );
        assert_eq!(condition_series_of(&text, "s9999-eu-west-1"), 3);
        assert_eq!(
            condition_series_of(&text, "s0000a-eu-west-1"),
            0,
            "behind the pieces already sent: in the next scrape"
        );
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(
            condition_series_of(&metrics.encode(), "s0000a-eu-west-1"),
            3
        );
    }

    #[test]
    fn condition_series_read_as_prometheus_client_writes_a_gauge_family() {
        let metrics = Metrics::default();
        let odd = ShopRegionLabels {
            namespace: "shops".into(),
            name: "zz".into(),
            shop: "a\\b\"c\nd".into(),
            region: "eu-west-1".into(),
        };
        metrics.report_shopregion(
            &odd,
            &[condition("Ready", "False"), condition("Stalled", "Unknown")],
            Duration::from_secs(30),
            false,
        );
        let ours_text = metrics.encode();
        let ours: std::collections::BTreeSet<String> =
            ours_text.lines().map(str::to_string).collect();

        let mut registry = Registry::with_prefix("shopfleet");
        let family = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register("shopregion_condition", "", family.clone());
        for (type_, current) in [("Ready", "False"), ("Stalled", "Unknown")] {
            for status in CONDITION_STATUSES {
                let labels = [
                    ("namespace", odd.namespace.as_str()),
                    ("name", odd.name.as_str()),
                    ("shop", odd.shop.as_str()),
                    ("region", odd.region.as_str()),
                    ("type", type_),
                    ("status", status),
                ]
                .map(|(k, v)| (k.to_string(), v.to_string()));
                family
                    .get_or_create(&labels.to_vec())
                    .set(i64::from(status == current));
            }
        }
        let mut theirs_text = String::new();
        prometheus_client::encoding::text::encode(&mut theirs_text, &registry).unwrap();
        let theirs: std::collections::BTreeSet<String> = theirs_text
            .lines()
            .filter(|l| l.starts_with("shopfleet_shopregion_condition{"))
            .map(str::to_string)
            .collect();
        let ours_series: std::collections::BTreeSet<String> = ours
            .iter()
            .filter(|l| l.starts_with("shopfleet_shopregion_condition{"))
            .cloned()
            .collect();
        assert_eq!(ours_series.len(), 6);
        assert_eq!(ours_series, theirs);
        assert!(ours.contains("# TYPE shopfleet_shopregion_condition gauge"));
        assert!(theirs_text.contains("# TYPE shopfleet_shopregion_condition gauge"));
    }

    #[test]
    fn a_scrape_of_a_large_fleet_comes_in_small_pieces_that_make_one_valid_exposition() {
        let metrics = Metrics::default();
        let conditions: Vec<_> = crate::api::conditions::types::ALL
            .iter()
            .map(|type_| condition(type_, "True"))
            .collect();
        for shop in 0..300 {
            for region in ["us-east-1", "eu-west-1", "ap-northeast-1"] {
                let labels = ShopRegionLabels {
                    namespace: "shops".into(),
                    name: format!("shop-{shop:04}-{region}"),
                    shop: format!("shop-{shop:04}"),
                    region: region.into(),
                };
                metrics.report_shopregion(&labels, &conditions, Duration::from_secs(30), false);
            }
        }
        // A label value with the three characters OpenMetrics escapes.
        metrics.report_shopregion(
            &ShopRegionLabels {
                namespace: "shops".into(),
                name: "zz".into(),
                shop: "a\\b\"c\nd".into(),
                region: "eu-west-1".into(),
            },
            &[condition("Ready", "False")],
            Duration::from_secs(30),
            false,
        );

        let pieces: Vec<String> = Exposition::new(&metrics).collect();
        // The first piece is the registry's families (two series per
        // ShopRegion), the others the conditions (21 per ShopRegion).
        assert!(!pieces[0].contains("shopfleet_shopregion_condition{"));
        let largest = pieces[1..].iter().map(String::len).max().unwrap();
        assert!(pieces.len() > 10, "{} pieces", pieces.len());
        assert!(
            largest < 2 * EXPOSITION_PIECE_BYTES,
            "a piece of {largest} bytes"
        );

        let text = pieces.concat();
        let lines: Vec<&str> = text.lines().collect();
        let series = |prefix: &str| lines.iter().filter(|l| l.starts_with(prefix)).count();
        let types = crate::api::conditions::types::ALL.len();
        assert_eq!(
            series("shopfleet_shopregion_condition{"),
            900 * types * 3 + 3
        );
        assert_eq!(series("# HELP shopfleet_shopregion_condition "), 1);
        assert_eq!(series("# TYPE shopfleet_shopregion_condition gauge"), 1);
        assert_eq!(series("# EOF"), 1);
        assert_eq!(lines.last(), Some(&"# EOF"));
        assert!(
            text.contains(
                "shopfleet_shopregion_condition{namespace=\"shops\",name=\"shop-0150-eu-west-1\",shop=\"shop-0150\",region=\"eu-west-1\",type=\"Ready\",status=\"True\"} 1\n"
            ),
            "a row in the middle of the fleet"
        );
        assert!(
            text.contains(r#"shop="a\\b\"c\nd""#),
            "escaped label value:\n{}",
            &text[text.len() - 2000..]
        );
        // Every ShopRegion is there: none lost at a seam between pieces.
        let names: std::collections::BTreeSet<&str> = lines
            .iter()
            .filter_map(|l| {
                l.strip_prefix("shopfleet_shopregion_condition{namespace=\"shops\",name=\"")
            })
            .map(|l| &l[..l.find('"').unwrap()])
            .collect();
        assert_eq!(names.len(), 901);
    }

    #[test]
    fn a_shopregion_reports_one_series_per_condition_status_and_loses_them_when_deleted() {
        let metrics = Metrics::default();
        let labels = ShopRegionLabels {
            namespace: "shop".into(),
            name: "acme-eu-west-1".into(),
            shop: "acme".into(),
            region: "eu-west-1".into(),
        };
        metrics.report_shopregion(
            &labels,
            &[condition("Ready", "False"), condition("Stalled", "True")],
            Duration::from_secs(30),
            true,
        );
        metrics.record_failover_started(&labels.shop(), FailoverKind::Failover, None);
        let text = metrics.encode();
        let series = |type_: &str, status: &str, value: u8| {
            format!(
                "shopfleet_shopregion_condition{{namespace=\"shop\",name=\"acme-eu-west-1\",shop=\"acme\",region=\"eu-west-1\",type=\"{type_}\",status=\"{status}\"}} {value}"
            )
        };
        assert!(text.contains(&series("Ready", "False", 1)), "{text}");
        assert!(text.contains(&series("Ready", "True", 0)), "{text}");
        assert!(text.contains(&series("Stalled", "True", 1)), "{text}");
        assert!(
            !text.contains("type=\"CacheReady\""),
            "a type not reported has no series"
        );
        assert!(text.contains(
            "shopfleet_replication_lag_budget_seconds{shop=\"acme\",region=\"eu-west-1\"} 30.0"
        ));
        assert!(text.contains("shopfleet_failover_refused{namespace=\"shop\",name=\"acme-eu-west-1\",shop=\"acme\",region=\"eu-west-1\"} 1"));

        metrics.count_reconcile_of("shop/acme-eu-west-1");
        assert_eq!(metrics.reconciles_of("shop", "acme-eu-west-1"), 1);

        metrics.forget_shopregion(&labels, true);
        let text = metrics.encode();
        assert!(
            !text.contains("acme"),
            "series of a deleted ShopRegion remain:\n{text}"
        );
        assert_eq!(metrics.reconciles_of("shop", "acme-eu-west-1"), 0);
    }
}
