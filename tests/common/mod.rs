//! A running operator for integration tests: the real controller, through the
//! real kube-rs client, against the in-process API server. (The e2e suite
//! runs the operator binary against a real cluster: `e2e/`.)

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, PostParams};
use kube::{Client, ResourceExt};
use shopfleet::api::ShopRegion;
use shopfleet::api::conditions::find;
use shopfleet::cloud::Cloud;
use shopfleet::controller::{self, Context, Scope};
use shopfleet::telemetry::{self, Metrics};
use tokio::sync::oneshot;

pub struct Harness {
    /// Present only on the in-process server, whose request log tests read.
    pub server: Option<kubesim::ApiServer>,
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub namespace: String,
    cloud: Option<Arc<dyn Cloud>>,
    /// How long a reconcile waits for the children caches (the
    /// operator's default when `None`).
    cache_sync_patience: Option<Duration>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Harness {
    /// The operator on the in-process Kubernetes API server, Kubernetes side only.
    pub async fn in_process() -> Harness {
        Self::in_process_with(None).await
    }

    /// The operator on the in-process Kubernetes API server, Kubernetes side
    /// only, refused each (verb, resource) of `forbidden` as RBAC would
    /// refuse it, and waiting `patience` for its children caches.
    pub async fn in_process_forbidden(forbidden: &[(&str, &str)], patience: Duration) -> Harness {
        let server = kubesim::ApiServer::start().await.expect("kubesim starts");
        server
            .install_crd_yaml(&shopfleet::api::crd_yaml())
            .expect("the generated CRD installs");
        for (verb, resource) in forbidden {
            server.forbid(verb, resource);
        }
        let config = server.config();
        let mut harness = Self::start(config, Some(server), "shop".to_string(), None, false).await;
        harness.cache_sync_patience = Some(patience);
        harness.start_controller();
        harness
    }

    /// The operator on the in-process Kubernetes API server and a cloud.
    pub async fn in_process_with(cloud: Option<Arc<dyn Cloud>>) -> Harness {
        let server = kubesim::ApiServer::start().await.expect("kubesim starts");
        server
            .install_crd_yaml(&shopfleet::api::crd_yaml())
            .expect("the generated CRD installs");
        let config = server.config();
        Self::start(config, Some(server), "shop".to_string(), cloud, true).await
    }

    async fn start(
        config: kube::Config,
        server: Option<kubesim::ApiServer>,
        namespace: String,
        cloud: Option<Arc<dyn Cloud>>,
        run_controller: bool,
    ) -> Harness {
        let metrics = Arc::new(Metrics::default());
        let client = telemetry::counting_client(config, metrics.clone()).unwrap();
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let mut ns = Namespace::default();
        ns.metadata.name = Some(namespace.clone());
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        let mut harness = Harness {
            server,
            client,
            metrics,
            namespace,
            cloud,
            cache_sync_patience: None,
            stop: None,
            task: None,
        };
        if run_controller {
            harness.start_controller();
        }
        harness
    }

    /// Starts a controller with a fresh context: what an operator pod
    /// starting up has, its status and the cloud, and no memory.
    fn start_controller(&mut self) {
        let mut ctx = Context::new(
            self.client.clone(),
            self.metrics.clone(),
            Some("test".into()),
        );
        if let Some(patience) = self.cache_sync_patience {
            ctx = ctx.with_cache_sync_patience(patience);
        }
        if let Some(cloud) = &self.cloud {
            ctx = ctx.with_cloud(
                cloud.clone(),
                shopfleet::cloud::budget::RequestBudget::default(),
            );
        }
        let (tx, rx) = oneshot::channel::<()>();
        let scope = Scope {
            namespace: Some(self.namespace.clone()),
        };
        self.task = Some(tokio::spawn(controller::run(Arc::new(ctx), scope, async {
            let _ = rx.await;
        })));
        self.stop = Some(tx);
    }

    /// Kills the controller where it stands (a crashed pod: whatever a
    /// reconcile was awaiting never happens) and starts a new one.
    pub async fn crash_and_restart_controller(&mut self) {
        self.stop.take();
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        self.start_controller();
    }

    pub fn regions(&self) -> Api<ShopRegion> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn writes(&self) -> u64 {
        ["create", "update", "patch", "delete"]
            .iter()
            .map(|v| self.metrics.kube_writes_by(v))
            .sum()
    }

    pub async fn create(&self, region: &ShopRegion) -> Result<ShopRegion, kube::Error> {
        self.regions().create(&PostParams::default(), region).await
    }

    pub async fn create_sample(&self, path: &str) -> ShopRegion {
        self.create(&sample(path)).await.unwrap()
    }

    /// Polls until `check` holds for the named ShopRegion, or fails the test
    /// with the last state seen.
    pub async fn wait_for(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&ShopRegion) -> bool,
    ) -> ShopRegion {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let current = self.regions().get_opt(name).await.unwrap();
            if let Some(region) = &current
                && check(region)
            {
                return region.clone();
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; last seen: {current:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the controller has stopped writing: no write for a quiet
    /// period (reconciles may go on, for example polling an accelerated cloud).
    pub async fn settle(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut last = self.writes();
        loop {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let now = self.writes();
            if now == last {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the controller never stopped writing"
            );
            last = now;
        }
    }

    /// Waits for at least one reconcile that starts after this call.
    pub async fn next_reconcile(&self) {
        let before = self.metrics.reconciles_total();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.metrics.reconciles_total() <= before + 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no reconcile happened"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        } else {
            let namespaces: Api<Namespace> = Api::all(self.client.clone());
            let _ = namespaces
                .delete(&self.namespace, &DeleteParams::default())
                .await;
        }
    }
}

pub fn sample(path: &str) -> ShopRegion {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What a `samples/invalid/*.yaml` file's first line promises.
#[derive(Debug, PartialEq, Eq)]
pub enum Expectation {
    Rejected { field: String },
    Stalled { reason: String },
}

pub fn expectation(path: &str) -> Expectation {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let first = text.lines().next().unwrap_or_default();
    let rest = first
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("{path}: first line must be `# expect: ...`"));
    match rest.split_once(' ') {
        Some(("Rejected", field)) => Expectation::Rejected {
            field: field.trim().to_string(),
        },
        Some(("Stalled", reason)) => Expectation::Stalled {
            reason: reason.trim().to_string(),
        },
        _ => panic!("{path}: unknown expectation {rest:?}"),
    }
}

/// Judges the API server's answer to creating the invalid sample `path`
/// against its first line: a rejection must name the field (checked here);
/// an acceptance returns the `Stalled` reason the operator must reach.
pub fn must_stall(path: &str, created: Result<DynamicObject, kube::Error>) -> Option<String> {
    match (expectation(path), created) {
        (Expectation::Rejected { field }, Err(kube::Error::Api(status))) => {
            assert_eq!(status.code, 422, "{path}: {status:?}");
            assert!(
                status.message.contains(&field),
                "{path}: the rejection should name {field}: {}",
                status.message
            );
            None
        }
        (Expectation::Rejected { .. }, other) => {
            panic!("{path} should be rejected by the API server, got {other:?}")
        }
        (Expectation::Stalled { reason }, Ok(_)) => Some(reason),
        (Expectation::Stalled { .. }, Err(e)) => {
            panic!("{path} should pass the API server and stall, but was refused: {e}")
        }
    }
}

pub fn invalid_samples() -> Vec<String> {
    let dir = format!("{}/samples/invalid", env!("CARGO_MANIFEST_DIR"));
    let mut paths: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .map(|n| format!("samples/invalid/{n}"))
        .collect();
    paths.sort();
    paths
}

pub fn condition<'a>(region: &'a ShopRegion, type_: &str) -> Option<&'a Condition> {
    region
        .status
        .as_ref()
        .and_then(|s| find(&s.conditions, type_))
}

/// Every sample applies, and every invalid sample is rejected by the API
/// server with the field its comment names, or reaches `Stalled=True` with the
/// reason its comment names (and nothing is created for it).
pub async fn check_samples(h: &Harness) {
    for path in [
        "samples/acme-us-east-1.yaml",
        "samples/acme-eu-west-1.yaml",
        "samples/acme-ap-northeast-1.yaml",
        "samples/variants/eurocard-pci-eu-eu-west-1.yaml",
        "samples/variants/eurocard-pci-eu-eu-central-1.yaml",
    ] {
        h.create(&sample(path))
            .await
            .unwrap_or_else(|e| panic!("{path} was refused: {e}"));
    }
    // Invalid samples go through as raw objects: some cannot even be parsed
    // into a ShopRegion, which is the point of sending them.
    let raw: Api<DynamicObject> = Api::namespaced_with(
        h.client.clone(),
        &h.namespace,
        &ApiResource::erase::<ShopRegion>(&()),
    );
    for path in invalid_samples() {
        let text =
            std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let object: DynamicObject =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let name = object.name_any();
        let created = raw.create(&PostParams::default(), &object).await;
        if let Some(reason) = must_stall(&path, created) {
            let stalled = h
                .wait_for(&name, &format!("{path}: Stalled={reason}"), |r| {
                    condition(r, shopfleet::api::conditions::types::STALLED)
                        .is_some_and(|c| c.status == "True")
                })
                .await;
            let condition =
                condition(&stalled, shopfleet::api::conditions::types::STALLED).unwrap();
            assert_eq!(condition.reason, reason, "{path}: {}", condition.message);
        }
    }
}
