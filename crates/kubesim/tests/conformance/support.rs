//! Test environment: an in-process `ApiServer`, or a real cluster from
//! KUBECONFIG when `KUBESIM_CONFORMANCE_KUBECONFIG=1`.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, CustomResource};
use kubesim::ApiServer;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const WIDGET_CRD: &str = include_str!("widget.yaml");
pub const GROUP: &str = "conformance.kubesim.dev";

/// The test CRD's typed form.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "conformance.kubesim.dev",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct WidgetSpec {
    pub size: i64,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One test's cluster: a client, a fresh namespace, and the simulator when in-process.
pub struct Env {
    pub client: Client,
    pub ns: String,
    pub sim: Option<ApiServer>,
    /// The real cluster's client configuration, used to clean up in `Drop`.
    config: Option<kube::Config>,
}

fn real_cluster() -> bool {
    std::env::var("KUBESIM_CONFORMANCE_KUBECONFIG").as_deref() == Ok("1")
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{:x}",
        N.fetch_add(1, Ordering::Relaxed),
        nanos % 0xfffff
    )
}

/// Sets up a test environment with the Widget CRD installed through the API.
pub async fn env() -> Env {
    let (client, sim, config) = if real_cluster() {
        let config = kube::Config::infer()
            .await
            .expect("KUBECONFIG names a cluster");
        let client = Client::try_from(config.clone()).expect("client from KUBECONFIG");
        (client, None, Some(config))
    } else {
        let server = ApiServer::start().await.expect("kubesim starts");
        (server.client(), Some(server), None)
    };
    install_widget_crd(&client).await;
    let ns = unique("ks");
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": ns}})).expect("namespace"),
    )
    .await
    .expect("create test namespace");
    wait_for_namespace_defaults(&client, &ns).await;
    Env {
        client,
        ns,
        sim,
        config,
    }
}

/// Waits for what the control plane puts in every new namespace: the
/// `kube-root-ca.crt` ConfigMap and the `default` ServiceAccount (a real
/// controller-manager publishes them moments after the namespace appears,
/// kubesim at once), so that no test sees them arrive in the middle.
async fn wait_for_namespace_defaults(client: &Client, ns: &str) {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    eventually("kube-root-ca.crt and the default ServiceAccount", || {
        let (cms, sas) = (cms.clone(), sas.clone());
        async move {
            matches!(cms.get_opt("kube-root-ca.crt").await, Ok(Some(_)))
                && matches!(sas.get_opt("default").await, Ok(Some(_)))
        }
    })
    .await;
}

/// Applies the Widget CRD and waits until it is Established.
pub async fn install_widget_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: Value = serde_saphyr::from_str(WIDGET_CRD).expect("CRD YAML");
    crds.patch(
        "widgets.conformance.kubesim.dev",
        &PatchParams::apply("kubesim-conformance").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply CRD");
    eventually("CRD established", || {
        let crds = crds.clone();
        async move {
            crds.get("widgets.conformance.kubesim.dev")
                .await
                .is_ok_and(|c| {
                    c.status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                })
        }
    })
    .await;
}

impl Env {
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Widgets as untyped objects.
    pub fn widgets(&self) -> Api<DynamicObject> {
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(GROUP, "v1", "Widget"));
        Api::namespaced_with(self.client.clone(), &self.ns, &ar)
    }

    /// The simulator, or `None` (with a note) when running against a real cluster.
    pub fn sim(&self, why: &str) -> Option<&ApiServer> {
        if self.sim.is_none() {
            eprintln!("skipped on a real cluster: {why}");
        }
        self.sim.as_ref()
    }
}

impl Drop for Env {
    /// Deletes the test namespace on a real cluster (the simulator just goes away).
    ///
    /// `Drop` cannot await, and the test's runtime is blocked while it runs, so
    /// the clean-up must not touch `self.client`: its connection task lives on
    /// that blocked runtime. A separate thread builds its own runtime and its
    /// own client from the kubeconfig, asks for the deletion (without waiting
    /// for the namespace to disappear) and gives up after a few seconds, so a
    /// test can never hang here.
    fn drop(&mut self) {
        let Some(config) = self.config.take() else {
            return;
        };
        let ns = std::mem::take(&mut self.ns);
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("clean-up runtime");
            rt.block_on(async move {
                let delete = async {
                    let client = Client::try_from(config)?;
                    let nss: Api<Namespace> = Api::all(client);
                    nss.delete(&ns, &DeleteParams::background()).await?;
                    Ok::<_, kube::Error>(())
                };
                match tokio::time::timeout(Duration::from_secs(10), delete).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => eprintln!("clean-up: deleting namespace {ns}: {e}"),
                    Err(_) => eprintln!("clean-up: deleting namespace {ns} timed out"),
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// A Widget manifest.
pub fn widget(name: &str, size: i64, region: &str) -> Value {
    json!({
        "apiVersion": "conformance.kubesim.dev/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": size, "region": region},
    })
}

/// Polls `check` until it returns true (10 s budget).
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_within(what, Duration::from_secs(10), check).await;
}

/// Polls `check` until it returns true, within `budget`.
pub async fn eventually_within<F, Fut>(what: &str, budget: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + budget;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// The API error of a failed request.
pub fn api_error<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A raw request through the client, returning status code and JSON body.
pub async fn raw(
    client: &Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(kube::client::Body::from(bytes))
        .expect("request");
    let resp = client.send(req).await.expect("send");
    let code = resp.status().as_u16();
    let body = resp.into_body().collect_bytes().await.expect("body");
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}
