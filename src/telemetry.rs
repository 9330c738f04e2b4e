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

use crate::api::{FailoverKind, FailoverResult};

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
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
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
pub struct FailoverLabels {
    /// `failover` or `switchover`.
    pub kind: &'static str,
    /// `completed`, `abandoned`, `superseded` or `refused`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegionLabels {
    pub region: String,
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
    pub kube_writes: Family<VerbLabels, Counter>,
    pub leader: Gauge,
    pub failovers: Family<FailoverLabels, Counter>,
    pub failover_duration: Family<KindLabels, Histogram, fn() -> Histogram>,
    pub replication_lag: Family<RegionLabels, Gauge<f64, AtomicU64>>,
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
        let kube_writes = Family::<VerbLabels, Counter>::default();
        registry.register(
            "kube_writes",
            "Write requests sent to the Kubernetes API, by verb",
            kube_writes.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this instance holds the leader lease",
            leader.clone(),
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
        let replication_lag = Family::<RegionLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "replication_lag_seconds",
            "Last known Aurora replication lag of a secondary region behind the writer",
            replication_lag.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_duration,
            reconcile_errors,
            kube_writes,
            leader,
            failovers,
            failover_duration,
            replication_lag,
        }
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
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

    pub fn kube_writes_by(&self, verb: &'static str) -> u64 {
        self.kube_writes.get_or_create(&VerbLabels { verb }).get()
    }

    /// Counts a recorded failover or switchover once it ends; with
    /// `Completed`, also observes its duration.
    pub fn record_failover(
        &self,
        kind: FailoverKind,
        result: FailoverResult,
        duration: Option<Duration>,
    ) {
        self.failovers
            .get_or_create(&FailoverLabels {
                kind: kind.metric_label(),
                result: result.metric_label(),
            })
            .inc();
        if let (FailoverResult::Completed, Some(duration)) = (result, duration) {
            self.failover_duration
                .get_or_create(&KindLabels {
                    kind: kind.metric_label(),
                })
                .observe(duration.as_secs_f64());
        }
    }

    /// Counts a failover the policy refused. Call it when the refusal
    /// begins (the `FailoverReady` condition turning to the refusal reason),
    /// not on every reconcile that still refuses.
    pub fn record_refused_failover(&self) {
        self.failovers
            .get_or_create(&FailoverLabels {
                kind: FailoverKind::Failover.metric_label(),
                result: "refused",
            })
            .inc();
    }

    /// Sets a region's replication lag; `None` (the writer, or no reading)
    /// removes the series rather than reporting a made-up zero.
    pub fn set_replication_lag(&self, region: &str, lag: Option<Duration>) {
        let labels = RegionLabels {
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

    pub fn failovers_by(&self, kind: FailoverKind, result: &'static str) -> u64 {
        self.failovers
            .get_or_create(&FailoverLabels {
                kind: kind.metric_label(),
                result,
            })
            .get()
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
                .kube_writes
                .get_or_create(&VerbLabels { verb })
                .inc();
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
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

/// Serves the probes and metrics until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router(metrics, readiness))
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
        metrics
            .kube_writes
            .get_or_create(&VerbLabels { verb: "patch" })
            .inc();
        let text = metrics.encode();
        assert!(text.contains("shopfleet_reconciles_total{result=\"error\"} 1"));
        assert!(text.contains("shopfleet_reconcile_errors_total{category=\"kube\"} 1"));
        assert!(text.contains("shopfleet_kube_writes_total{verb=\"patch\"} 1"));
        assert!(text.contains("shopfleet_reconcile_duration_seconds_bucket"));
    }

    #[test]
    fn failover_metrics_are_exported_under_their_documented_names() {
        let metrics = Metrics::default();
        metrics.record_failover(
            FailoverKind::Failover,
            FailoverResult::Completed,
            Some(Duration::from_secs(62)),
        );
        metrics.record_failover(FailoverKind::Switchover, FailoverResult::Superseded, None);
        metrics.record_refused_failover();
        metrics.set_replication_lag("eu-west-1", Some(Duration::from_millis(250)));
        let text = metrics.encode();
        assert!(
            text.contains("shopfleet_failovers_total{kind=\"failover\",result=\"completed\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("shopfleet_failovers_total{kind=\"switchover\",result=\"superseded\"} 1")
        );
        assert!(text.contains("shopfleet_failovers_total{kind=\"failover\",result=\"refused\"} 1"));
        assert!(
            text.contains("shopfleet_failover_duration_seconds_sum{kind=\"failover\"} 62.0"),
            "{text}"
        );
        assert!(
            text.contains("shopfleet_replication_lag_seconds{region=\"eu-west-1\"} 0.25"),
            "{text}"
        );
        assert_eq!(metrics.failovers_by(FailoverKind::Failover, "completed"), 1);
    }

    #[test]
    fn a_region_without_a_lag_reading_has_no_lag_series() {
        let metrics = Metrics::default();
        metrics.set_replication_lag("eu-west-1", Some(Duration::from_secs(1)));
        metrics.set_replication_lag("eu-west-1", None);
        assert!(!metrics.encode().contains("region=\"eu-west-1\""));
    }
}
