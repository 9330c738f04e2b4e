//! An honest in-process Kubernetes API server for tests and simulation.
//!
//! [`ApiServer::start`] binds `127.0.0.1:0` and serves the real Kubernetes
//! REST protocol over HTTP/1.1, so the real `kube::Client`, kube-runtime's
//! watcher/reflector/`Controller`, the finalizer helper, server-side apply,
//! the events `Recorder` and lease-based leader election run against it
//! unchanged. See the crate README for what is covered and where it differs
//! from a real API server.

mod apply;
mod error;
mod fieldset;
mod gc;
mod gofmt;
mod http;
mod ids;
mod patch;
mod resource;
mod rollout;
mod schema;
mod selector;
mod store;
mod typed;
mod watch;
mod yaml;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use error::{ApiError, Cause, Details, Error};
pub use rollout::RolloutPolicy;
use store::{ObjKey, Store};

/// Counts of client requests by (verb, resource plural, subresource).
///
/// Verbs are the Kubernetes ones: `get`, `list`, `watch`, `create`, `update`,
/// `patch`, `delete`, `deletecollection`. Simulation hooks are not counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestLog {
    counts: BTreeMap<(String, String, Option<String>), u64>,
}

const WRITE_VERBS: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];

impl RequestLog {
    pub(crate) fn record(&mut self, verb: &str, resource: &str, subresource: Option<&str>) {
        *self
            .counts
            .entry((
                verb.to_string(),
                resource.to_string(),
                subresource.map(String::from),
            ))
            .or_default() += 1;
    }

    /// Requests with this verb on this resource, any subresource included.
    pub fn count(&self, verb: &str, resource: &str) -> u64 {
        self.counts
            .iter()
            .filter(|((v, r, _), _)| v == verb && r == resource)
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests with this verb on exactly this resource and subresource.
    pub fn count_subresource(&self, verb: &str, resource: &str, subresource: Option<&str>) -> u64 {
        self.counts
            .get(&(
                verb.to_string(),
                resource.to_string(),
                subresource.map(String::from),
            ))
            .copied()
            .unwrap_or(0)
    }

    /// Total writes: create, update, patch, delete and deletecollection.
    pub fn writes(&self) -> u64 {
        self.counts
            .iter()
            .filter(|((v, _, _), _)| WRITE_VERBS.contains(&v.as_str()))
            .map(|(_, n)| n)
            .sum()
    }

    /// Writes since an earlier snapshot.
    pub fn writes_since(&self, earlier: &RequestLog) -> u64 {
        self.writes().saturating_sub(earlier.writes())
    }

    /// All requests.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Every (verb, resource, subresource, count).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, Option<&str>, u64)> {
        self.counts
            .iter()
            .map(|((v, r, s), n)| (v.as_str(), r.as_str(), s.as_deref(), *n))
    }
}

impl std::fmt::Display for RequestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (v, r, s, n) in self.entries() {
            match s {
                Some(s) => writeln!(f, "{v} {r}/{s}: {n}")?,
                None => writeln!(f, "{v} {r}: {n}")?,
            }
        }
        Ok(())
    }
}

struct Inner {
    store: Arc<Store>,
    addr: SocketAddr,
    client: kube::Client,
    accept: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.accept.abort();
        self.store.close_watches.send_modify(|n| *n += 1);
    }
}

/// Handle to a running in-process API server. Cheap to clone; the server
/// stops when the last handle is dropped (or on [`ApiServer::shutdown`]).
#[derive(Clone)]
pub struct ApiServer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("url", &self.url())
            .finish()
    }
}

impl ApiServer {
    /// Binds `127.0.0.1:0`, spawns the server task and registers the built-in kinds.
    pub async fn start() -> Result<ApiServer, Error> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let store = Store::new();
        let ctx = Arc::new(http::Ctx {
            store: store.clone(),
            address: addr.to_string(),
        });
        let accept = tokio::spawn(accept_loop(listener, ctx));
        let config = config_for(addr);
        let client = kube::Client::try_from(config)?;
        Ok(ApiServer {
            inner: Arc::new(Inner {
                store,
                addr,
                client,
                accept,
            }),
        })
    }

    /// A real `kube::Client` talking HTTP to this server (default namespace `default`).
    pub fn client(&self) -> kube::Client {
        self.inner.client.clone()
    }

    /// A `kube::Config` pointing at this server.
    pub fn config(&self) -> kube::Config {
        config_for(self.inner.addr)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// Registers CRDs from `apiextensions.k8s.io/v1` YAML (one or more documents),
    /// creating or updating them. Not counted as client requests.
    pub fn install_crd_yaml(&self, yaml: &str) -> Result<(), Error> {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(yaml).map_err(|e| Error::Yaml(e.to_string()))?;
        self.inner.store.with(|s| {
            docs.into_iter()
                .filter(|d| !d.is_null())
                .try_for_each(|d| s.install_crd(d))
        })?;
        Ok(())
    }

    /// A snapshot of the request counts.
    pub fn requests(&self) -> RequestLog {
        self.inner.store.lock().requests.clone()
    }

    /// Resets the request counts.
    pub fn reset_requests(&self) {
        self.inner.store.lock().requests = RequestLog::default();
    }

    /// Sets how the simulated deployment controller completes rollouts.
    pub fn set_deployment_rollout(&self, policy: RolloutPolicy) {
        self.inner.store.lock().rollout.policy = policy;
    }

    /// Images that never become available: a rollout of a Deployment using one
    /// ends with `Available=False` and `Progressing=False` (reason
    /// `ProgressDeadlineExceeded`, message naming the image pull back-off)
    /// instead of completing.
    pub fn set_failing_images<I, S>(&self, images: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.inner.store.lock().rollout.failing_images =
            images.into_iter().map(Into::into).collect();
    }

    /// Completes the rollout of a Deployment now (for [`RolloutPolicy::Manual`]
    /// or virtual-clock drivers). A Deployment using a failing image gets the
    /// failed status instead. Not counted as a client request.
    pub fn mark_deployment_available(&self, namespace: &str, name: &str) -> Result<(), Error> {
        let key = ObjKey {
            group: "apps".into(),
            plural: "deployments".into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        if !self.inner.store.lock().objects.contains_key(&key) {
            return Err(ApiError::not_found("apps", "deployments", name).into());
        }
        self.inner.store.finish_rollout(&key, None);
        Ok(())
    }

    /// The raw JSON of an object (not counted). `api_version` like `apps/v1`,
    /// `plural` like `deployments`; `namespace` is ignored for cluster-scoped kinds.
    pub fn get_object(
        &self,
        api_version: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let (group, _) = resource::split_api_version(api_version);
        self.inner
            .store
            .lock()
            .raw(group, plural, namespace.unwrap_or(""), name)
    }

    /// A typed object (not counted), e.g. `server.get::<Deployment>(Some("ns"), "web")`.
    pub fn get<K>(&self, namespace: Option<&str>, name: &str) -> Option<K>
    where
        K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned,
    {
        let value = self.get_object(&K::api_version(&()), &K::plural(&()), namespace, name)?;
        serde_json::from_value(value).ok()
    }

    /// The current global resource version.
    pub fn resource_version(&self) -> u64 {
        self.inner.store.lock().rv
    }

    /// Makes the server end every open watch stream (clients resume from their last version).
    pub fn close_watches(&self) {
        self.inner.store.close_watches.send_modify(|n| *n += 1);
    }

    /// Forgets the event history: watches from older resource versions get 410 Gone.
    pub fn compact(&self) {
        self.inner.store.lock().compact();
    }

    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK (default 1 s).
    pub fn set_bookmark_interval(&self, interval: Duration) {
        self.inner.store.lock().bookmark_interval = interval;
    }

    /// Refuses `verb` (`list`, `watch`, `get`, `patch`, ...) on `plural`
    /// with 403 Forbidden from now on, as RBAC refuses a ServiceAccount
    /// its Role does not grant it.
    pub fn forbid(&self, verb: &str, plural: &str) {
        self.inner
            .store
            .lock()
            .forbidden
            .insert((verb.to_string(), plural.to_string()));
    }

    /// Stops accepting connections and ends all watches.
    pub async fn shutdown(self) {
        self.inner.accept.abort();
        self.close_watches();
        tokio::task::yield_now().await;
    }
}

fn config_for(addr: SocketAddr) -> kube::Config {
    let uri: hyper::Uri = format!("http://{addr}")
        .parse()
        .unwrap_or_else(|_| hyper::Uri::from_static("http://127.0.0.1"));
    kube::Config::new(uri)
}

async fn accept_loop(listener: TcpListener, ctx: Arc<http::Ctx>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "kubesim accept failed");
                continue;
            }
        };
        // As Go's net/http does for a real API server: without it, Nagle's
        // algorithm holds back a watch event written right after another
        // until the client acknowledges the first, a delay the client
        // cannot explain and a virtual-time simulation would misread.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "kubesim could not disable Nagle's algorithm");
        }
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| http::handle(ctx.clone(), req));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "kubesim connection ended");
            }
        });
    }
}
