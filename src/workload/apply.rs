//! The workload's reads and writes: the children of a ShopRegion as the
//! operator's watch caches hold them, and the server-side applies (and the
//! one delete) that [`plan_writes`] decided. Thin I/O: every decision is a
//! pure function here or in [`super::diff`]; a converged ShopRegion costs
//! no request at all.

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::builders::{Children, FIELD_MANAGER, MANAGED_BY, labels};
use super::diff::needs_apply;
use crate::cache::{JsonCache, WatchFailure, slim_for_cache};

/// The children of a ShopRegion as the watch caches hold them.
#[derive(Clone, Debug, Default)]
pub struct ObservedChildren {
    pub configmap: Option<Arc<ConfigMap>>,
    pub service: Option<Arc<Service>>,
    pub cache_primary: Option<Arc<Service>>,
    pub deployment: Option<Arc<Deployment>>,
    pub pdb: Option<Arc<PodDisruptionBudget>>,
    pub hpa: Option<Arc<HorizontalPodAutoscaler>>,
}

/// One child to apply.
#[derive(Clone, Debug, PartialEq)]
pub enum Child {
    ConfigMap(Box<ConfigMap>),
    Service(Box<Service>),
    Deployment(Box<Deployment>),
    Pdb(Box<PodDisruptionBudget>),
    Hpa(Box<HorizontalPodAutoscaler>),
}

/// One write of the workload concern.
#[derive(Clone, Debug, PartialEq)]
pub enum ChildWrite {
    Apply(Child),
    /// The PodDisruptionBudget of this name is ours and no longer wanted.
    DeletePdb(String),
}

/// What [`apply_writes`] did.
#[derive(Clone, Debug, Default)]
pub struct ApplyReport {
    /// `Kind/name` of every child applied, in order.
    pub applied: Vec<String>,
    /// `Kind/name` of every child deleted.
    pub deleted: Vec<String>,
    /// The Deployment as it stands after the apply, for the status.
    pub deployment: Option<Arc<Deployment>>,
    /// What the pods' template still lacks while the Deployment is held
    /// back (see [`WorkloadPlan`]); empty otherwise.
    pub waiting_for: Vec<&'static str>,
}

/// The writes of one reconcile and, while they are held back, why.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkloadPlan {
    pub writes: Vec<ChildWrite>,
    /// Not empty while the order Deployment does not exist and its pods'
    /// template lacks something only the cloud can give (an endpoint, the
    /// master Secret, the AUTH token): the Deployment, its autoscaler and
    /// its disruption budget wait for all of it, so that the pods start
    /// once, complete, instead of rolling once per value as it arrives.
    pub waiting_for: Vec<&'static str>,
}

/// The writes for the desired children, holding the order pods back while
/// their template is incomplete and no Deployment exists yet. An existing
/// Deployment is never held: its replicas and image must follow the spec,
/// and its endpoints are carried over by
/// [`super::topology::Topology::or_last_known`].
pub fn plan_workload(
    desired: &Children,
    observed: &ObservedChildren,
    waiting_for: Vec<&'static str>,
) -> WorkloadPlan {
    let writes = plan_writes(desired, observed);
    if observed.deployment.is_some() || waiting_for.is_empty() {
        return WorkloadPlan {
            writes,
            waiting_for: Vec::new(),
        };
    }
    let writes = writes
        .into_iter()
        .filter(|write| {
            !matches!(
                write,
                ChildWrite::Apply(Child::Deployment(_) | Child::Hpa(_) | Child::Pdb(_))
            )
        })
        .collect();
    WorkloadPlan {
        writes,
        waiting_for,
    }
}

/// Which child caches have not listed their objects yet, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotSynced {
    /// The resources (`deployments`, ...) whose caches have not synced.
    pub resources: Vec<&'static str>,
    /// Their watches' failures, each prefixed with its resource.
    pub failures: Vec<String>,
    /// The API server refused one of them a list or watch: its message.
    pub forbidden: Option<String>,
}

impl NotSynced {
    /// From each cache's (resource, synced, last watch failure). Pure.
    pub fn of(states: &[(&'static str, bool, Option<WatchFailure>)]) -> Self {
        let waiting = states.iter().filter(|(_, synced, _)| !synced);
        let resources = waiting.clone().map(|(resource, _, _)| *resource).collect();
        let failures = waiting
            .clone()
            .filter_map(|(resource, _, failure)| {
                failure
                    .as_ref()
                    .map(|f| format!("{resource}: {}", f.message))
            })
            .collect();
        let forbidden = waiting
            .filter_map(|(_, _, failure)| failure.as_ref())
            .find(|f| f.forbidden)
            .map(|f| f.message.clone());
        Self {
            resources,
            failures,
            forbidden,
        }
    }
}

impl std::fmt::Display for NotSynced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.resources.is_empty() {
            // No cache to wait for: this controller never started its
            // children's watches.
            return write!(f, "the operator's caches of the children are not running");
        }
        write!(
            f,
            "the operator's caches of {} have not listed them yet",
            self.resources.join(", ")
        )?;
        if self.failures.is_empty() {
            write!(f, " (their watches report no error yet)")
        } else {
            write!(f, "; their watches failed: {}", self.failures.join("; "))
        }
    }
}

/// The names of a ShopRegion's children.
#[derive(Clone, Copy, Debug)]
pub struct ChildNames<'a> {
    pub topology: &'a str,
    pub workload: &'a str,
    pub cache_primary: &'a str,
}

/// The operator's caches of every child kind, fed by the watches that also
/// trigger the owners' reconciles. A reconcile reads its children here
/// rather than with six GETs: 3,000 ShopRegions polling AWS during a
/// bootstrap asked the API server for some 350 GETs a second, and it
/// answered every reconcile slower for it. A cache may trail a write by the
/// watch's latency; the next reconcile then applies the same object again,
/// which the API server takes as a no-op.
#[derive(Clone)]
pub struct ChildStores {
    pub configmaps: JsonCache<ConfigMap>,
    pub services: JsonCache<Service>,
    pub deployments: JsonCache<Deployment>,
    pub pdbs: JsonCache<PodDisruptionBudget>,
    pub hpas: JsonCache<HorizontalPodAutoscaler>,
}

impl Default for ChildStores {
    fn default() -> Self {
        Self::new()
    }
}

impl ChildStores {
    /// Empty caches. Each keeps what the workload concern reads: the
    /// Deployment's status (rollout, image pull failures) but no other
    /// child's, which nothing reads (an autoscaler's status alone is
    /// larger than its spec).
    pub fn new() -> Self {
        Self {
            configmaps: JsonCache::new(slim_for_cache),
            services: JsonCache::new(|service: &mut Service| {
                slim_for_cache(service);
                service.status = None;
            }),
            deployments: JsonCache::new(slim_for_cache),
            pdbs: JsonCache::new(|pdb: &mut PodDisruptionBudget| {
                slim_for_cache(pdb);
                pdb.status = None;
            }),
            hpas: JsonCache::new(|hpa: &mut HorizontalPodAutoscaler| {
                slim_for_cache(hpa);
                hpa.status = None;
            }),
        }
    }

    /// Waits until every cache holds its first complete list, at most
    /// `patience`: before that, a child absent from a cache may exist, and
    /// applying it again on each of a fleet's ShopRegions after a restart
    /// would be a write storm. Past `patience`, which caches have not
    /// synced and why their watches failed (a missing list or watch
    /// permission, most often).
    pub async fn synced(&self, patience: std::time::Duration) -> Result<(), NotSynced> {
        let all = async {
            self.configmaps.synced().await;
            self.services.synced().await;
            self.deployments.synced().await;
            self.pdbs.synced().await;
            self.hpas.synced().await;
        };
        if tokio::time::timeout(patience, all).await.is_ok() {
            return Ok(());
        }
        let states = [
            (
                "configmaps",
                self.configmaps.is_synced(),
                self.configmaps.failure(),
            ),
            (
                "services",
                self.services.is_synced(),
                self.services.failure(),
            ),
            (
                "deployments",
                self.deployments.is_synced(),
                self.deployments.failure(),
            ),
            (
                "poddisruptionbudgets",
                self.pdbs.is_synced(),
                self.pdbs.failure(),
            ),
            (
                "horizontalpodautoscalers",
                self.hpas.is_synced(),
                self.hpas.failure(),
            ),
        ];
        Err(NotSynced::of(&states))
    }

    /// The children of one ShopRegion in namespace `ns`.
    pub fn observe(&self, ns: &str, names: ChildNames<'_>) -> ObservedChildren {
        ObservedChildren {
            configmap: self.configmaps.get(ns, names.topology).map(Arc::new),
            service: self.services.get(ns, names.workload).map(Arc::new),
            cache_primary: self.services.get(ns, names.cache_primary).map(Arc::new),
            deployment: self.deployments.get(ns, names.workload).map(Arc::new),
            pdb: self.pdbs.get(ns, names.workload).map(Arc::new),
            hpa: self.hpas.get(ns, names.workload).map(Arc::new),
        }
    }
}

/// The writes that bring the observed children to the desired ones, in
/// order: the ConfigMap first, so that new pods find it. A child is applied
/// only when [`needs_apply`] says so; an unwanted PodDisruptionBudget is
/// deleted only when it is ours ([`pdb_is_ours`]). Pure.
pub fn plan_writes(desired: &Children, observed: &ObservedChildren) -> Vec<ChildWrite> {
    let mut writes = Vec::new();
    let configmap = &desired.configmap;
    if differs(configmap, observed.configmap.as_deref()) {
        writes.push(ChildWrite::Apply(Child::ConfigMap(Box::new(
            configmap.clone(),
        ))));
    }
    if differs(&desired.service, observed.service.as_deref()) {
        writes.push(ChildWrite::Apply(Child::Service(Box::new(
            desired.service.clone(),
        ))));
    }
    // An unknown cache primary leaves the last name in place: pods keep
    // reaching the primary they had rather than nothing.
    if let Some(cache_primary) = &desired.cache_primary
        && differs(cache_primary, observed.cache_primary.as_deref())
    {
        writes.push(ChildWrite::Apply(Child::Service(Box::new(
            cache_primary.clone(),
        ))));
    }
    if differs(&desired.deployment, observed.deployment.as_deref()) {
        writes.push(ChildWrite::Apply(Child::Deployment(Box::new(
            desired.deployment.clone(),
        ))));
    }
    match (&desired.pdb, &observed.pdb) {
        (Some(pdb), existing) if differs(pdb, existing.as_deref()) => {
            writes.push(ChildWrite::Apply(Child::Pdb(Box::new(pdb.clone()))));
        }
        (None, Some(existing)) if pdb_is_ours(existing, &desired.deployment) => {
            writes.push(ChildWrite::DeletePdb(existing.name_any()));
        }
        _ => {}
    }
    if differs(&desired.hpa, observed.hpa.as_deref()) {
        writes.push(ChildWrite::Apply(Child::Hpa(Box::new(desired.hpa.clone()))));
    }
    writes
}

fn differs<K: Serialize>(desired: &K, observed: Option<&K>) -> bool {
    let (Ok(desired), Some(Ok(observed))) = (
        serde_json::to_value(desired),
        observed.map(serde_json::to_value),
    ) else {
        // Absent (or, in theory, unserialisable): apply.
        return true;
    };
    needs_apply(&desired, Some(&observed))
}

/// A PodDisruptionBudget the spec no longer wants is deleted only if it is
/// ours: labelled managed-by shopfleet and controlled by the same ShopRegion
/// as the Deployment. One made by hand is left alone.
pub fn pdb_is_ours(existing: &PodDisruptionBudget, deployment: &Deployment) -> bool {
    let owner_uid = deployment
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str());
    let managed = existing
        .labels()
        .get(labels::MANAGED_BY)
        .map(String::as_str)
        == Some(MANAGED_BY);
    let owned = owner_uid.is_some_and(|uid| {
        existing
            .owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && o.uid == uid)
    });
    managed && owned
}

/// Carries out the planned writes (server-side apply, field manager
/// `shopfleet`, forced), in order.
pub async fn apply_writes(
    client: &Client,
    ns: &str,
    writes: &[ChildWrite],
    observed: &ObservedChildren,
) -> Result<ApplyReport, kube::Error> {
    let mut report = ApplyReport {
        deployment: observed.deployment.clone(),
        ..ApplyReport::default()
    };
    for write in writes {
        match write {
            ChildWrite::Apply(Child::ConfigMap(c)) => {
                apply(client, ns, c.as_ref(), &mut report).await?;
            }
            ChildWrite::Apply(Child::Service(s)) => {
                apply(client, ns, s.as_ref(), &mut report).await?;
            }
            ChildWrite::Apply(Child::Deployment(d)) => {
                report.deployment =
                    Some(Arc::new(apply(client, ns, d.as_ref(), &mut report).await?));
            }
            ChildWrite::Apply(Child::Pdb(p)) => {
                apply(client, ns, p.as_ref(), &mut report).await?;
            }
            ChildWrite::Apply(Child::Hpa(h)) => {
                apply(client, ns, h.as_ref(), &mut report).await?;
            }
            ChildWrite::DeletePdb(name) => {
                Api::<PodDisruptionBudget>::namespaced(client.clone(), ns)
                    .delete(name, &DeleteParams::default())
                    .await?;
                report.deleted.push(format!("PodDisruptionBudget/{name}"));
            }
        }
    }
    Ok(report)
}

async fn apply<K>(
    client: &Client,
    ns: &str,
    desired: &K,
    report: &mut ApplyReport,
) -> Result<K, kube::Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let name = desired.name_any();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let applied = Api::<K>::namespaced(client.clone(), ns)
        .patch(&name, &params, &Patch::Apply(desired))
        .await?;
    report.applied.push(format!("{}/{name}", K::kind(&())));
    Ok(applied)
}

#[cfg(test)]
mod tests {
    //! Against a minimal in-memory API server on 127.0.0.1 that speaks enough
    //! HTTP for GET, server-side apply and DELETE, fills in defaults the way a
    //! real API server does, and counts writes.

    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use hyper::{Method, Request, Response, StatusCode};
    use hyper_util::rt::TokioIo;
    use serde_json::{Value, json};

    use super::*;
    use crate::api::RegionRole;
    use crate::api::fixtures::acme_region;
    use crate::workload::builders::{cache_primary_name, topology_name, workload_name};

    /// Observes, plans and applies the children of acme's us-east-1 in one
    /// go, as the workload concern does in three steps. The observed
    /// children are what the server holds, as a synced watch cache would.
    async fn apply_children(
        client: &Client,
        state: &Shared,
        children: &Children,
    ) -> Result<ApplyReport, kube::Error> {
        let region = acme_region("us-east-1");
        let observed = {
            let server = state.lock().unwrap();
            ObservedChildren {
                configmap: cached(&server, "/api/v1", "configmaps", &topology_name(&region)),
                service: cached(&server, "/api/v1", "services", &workload_name(&region)),
                cache_primary: cached(&server, "/api/v1", "services", &cache_primary_name(&region)),
                deployment: cached(
                    &server,
                    "/apis/apps/v1",
                    "deployments",
                    &workload_name(&region),
                ),
                pdb: cached(
                    &server,
                    "/apis/policy/v1",
                    "poddisruptionbudgets",
                    &workload_name(&region),
                ),
                hpa: cached(
                    &server,
                    "/apis/autoscaling/v2",
                    "horizontalpodautoscalers",
                    &workload_name(&region),
                ),
            }
        };
        apply_writes(client, "shop", &plan_writes(children, &observed), &observed).await
    }

    fn cached<K: serde::de::DeserializeOwned>(
        server: &Server,
        group: &str,
        plural: &str,
        name: &str,
    ) -> Option<Arc<K>> {
        let object = server
            .objects
            .get(&format!("{group}/namespaces/shop/{plural}/{name}"))?;
        Some(Arc::new(serde_json::from_value(object.clone()).unwrap()))
    }

    use crate::workload::builders::{WorkloadInputs, desired_children};
    use crate::workload::capacity::plan_capacity;
    use crate::workload::topology::Topology;

    #[derive(Default)]
    struct Server {
        objects: HashMap<String, Value>,
        writes: Vec<String>,
    }

    type Shared = Arc<Mutex<Server>>;

    fn respond(code: StatusCode, body: Value) -> Response<Full<Bytes>> {
        Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    }

    /// What a real API server adds to an applied object.
    fn with_server_defaults(mut object: Value, generation: i64) -> Value {
        object["metadata"]["uid"] = json!("server-uid");
        object["metadata"]["resourceVersion"] = json!(generation.to_string());
        object["metadata"]["generation"] = json!(generation);
        object["metadata"]["managedFields"] =
            json!([{"manager": "shopfleet", "operation": "Apply"}]);
        if object["kind"] == "Deployment" {
            object["spec"]["revisionHistoryLimit"] = json!(10);
            object["spec"]["progressDeadlineSeconds"] = json!(300);
            let pod = &mut object["spec"]["template"]["spec"];
            pod["restartPolicy"] = json!("Always");
            pod["dnsPolicy"] = json!("ClusterFirst");
            let container = &mut pod["containers"][0];
            container["terminationMessagePath"] = json!("/dev/termination-log");
            container["imagePullPolicy"] = json!("IfNotPresent");
            container["readinessProbe"]["successThreshold"] = json!(1);
            // Canonical quantities, as the API server writes them back.
            if let Some(requests) = container["resources"]["requests"].as_object_mut() {
                for value in requests.values_mut() {
                    match value.as_str() {
                        Some("0.5") => *value = json!("500m"),
                        Some("1024Mi") => *value = json!("1Gi"),
                        _ => {}
                    }
                }
            }
            object["status"] =
                json!({"observedGeneration": generation, "replicas": object["spec"]["replicas"]});
        }
        if object["kind"] == "Service" {
            object["spec"]["clusterIP"] = json!("10.0.0.10");
            object["spec"]["sessionAffinity"] = json!("None");
        }
        object
    }

    async fn handle(
        state: Shared,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, hyper::Error> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let body = req.into_body().collect().await?.to_bytes();
        let mut server = state.lock().unwrap();
        let not_found = || {
            respond(
                StatusCode::NOT_FOUND,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                       "reason": "NotFound", "code": 404, "message": "not found"}),
            )
        };
        Ok(match method {
            Method::GET => match server.objects.get(&path) {
                Some(object) => respond(StatusCode::OK, object.clone()),
                None => not_found(),
            },
            Method::PATCH => {
                let applied: Value = serde_json::from_slice(&body).unwrap();
                let generation = server
                    .objects
                    .get(&path)
                    .and_then(|o| o["metadata"]["generation"].as_i64())
                    .unwrap_or(0)
                    + 1;
                let stored = with_server_defaults(applied, generation);
                server.objects.insert(path.clone(), stored.clone());
                server.writes.push(format!("PATCH {path}"));
                respond(StatusCode::OK, stored)
            }
            Method::DELETE => match server.objects.remove(&path) {
                Some(_) => {
                    server.writes.push(format!("DELETE {path}"));
                    respond(
                        StatusCode::OK,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                    )
                }
                None => not_found(),
            },
            _ => respond(StatusCode::METHOD_NOT_ALLOWED, json!({})),
        })
    }

    async fn start() -> (Client, Shared) {
        let state: Shared = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let config = kube::Config::new(url.parse().unwrap());
        (Client::try_from(config).unwrap(), state)
    }

    fn children(min_replicas: Option<i32>, observed_replicas: Option<i32>) -> Children {
        let mut region = acme_region("us-east-1");
        region.spec.orders.min_replicas = min_replicas;
        // Written the way a user might; the server canonicalises them.
        region.spec.orders.resources = Some(k8s_openapi::api::core::v1::ResourceRequirements {
            requests: Some(
                [("cpu", "0.5"), ("memory", "1024Mi")]
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            k.to_string(),
                            k8s_openapi::apimachinery::pkg::api::resource::Quantity(v.into()),
                        )
                    })
                    .collect(),
            ),
            ..Default::default()
        });
        let topology = Topology::new(&region.spec, RegionRole::Primary);
        desired_children(&WorkloadInputs {
            region: &region,
            topology: &topology,
            capacity: plan_capacity(&region.spec.orders, 3),
            absorbing: false,
            observed_replicas,
        })
    }

    fn writes(state: &Shared) -> Vec<String> {
        std::mem::take(&mut state.lock().unwrap().writes)
    }

    fn kinds(plan: &WorkloadPlan) -> Vec<&'static str> {
        plan.writes
            .iter()
            .map(|write| match write {
                ChildWrite::Apply(Child::ConfigMap(_)) => "ConfigMap",
                ChildWrite::Apply(Child::Service(_)) => "Service",
                ChildWrite::Apply(Child::Deployment(_)) => "Deployment",
                ChildWrite::Apply(Child::Pdb(_)) => "PodDisruptionBudget",
                ChildWrite::Apply(Child::Hpa(_)) => "HorizontalPodAutoscaler",
                ChildWrite::DeletePdb(_) => "delete PodDisruptionBudget",
            })
            .collect()
    }

    #[test]
    fn no_order_pod_starts_before_its_endpoints_are_known() {
        let desired = children(None, None);
        let waiting = vec!["the cache reader endpoint"];
        let held = plan_workload(&desired, &ObservedChildren::default(), waiting.clone());
        assert_eq!(kinds(&held), ["ConfigMap", "Service"]);
        assert_eq!(held.waiting_for, waiting);

        let complete = plan_workload(&desired, &ObservedChildren::default(), Vec::new());
        assert!(kinds(&complete).contains(&"Deployment"));
        assert!(kinds(&complete).contains(&"HorizontalPodAutoscaler"));
        assert!(complete.waiting_for.is_empty());
    }

    #[test]
    fn an_existing_order_deployment_keeps_following_the_spec_while_an_endpoint_is_unknown() {
        let desired = children(None, None);
        let mut stale = desired.deployment.clone();
        stale.spec.replicas = Some(1);
        let observed = ObservedChildren {
            deployment: Some(Arc::new(stale)),
            ..ObservedChildren::default()
        };
        let plan = plan_workload(&desired, &observed, vec!["the database reader endpoint"]);
        assert!(kinds(&plan).contains(&"Deployment"), "{:?}", kinds(&plan));
        assert!(
            plan.waiting_for.is_empty(),
            "nothing is held, so nothing is said to wait"
        );
    }

    const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/shop/deployments/acme-us-east-1-orders";
    const PDB: &str = "/apis/policy/v1/namespaces/shop/poddisruptionbudgets/acme-us-east-1-orders";

    #[tokio::test]
    async fn a_converged_shop_region_makes_no_write() {
        let (client, state) = start().await;
        let first = apply_children(&client, &state, &children(None, None))
            .await
            .unwrap();
        assert_eq!(
            first.applied,
            vec![
                "ConfigMap/acme-us-east-1-topology",
                "Service/acme-us-east-1-orders",
                "Deployment/acme-us-east-1-orders",
                "PodDisruptionBudget/acme-us-east-1-orders",
                "HorizontalPodAutoscaler/acme-us-east-1-orders",
            ]
        );
        assert_eq!(writes(&state).len(), 5);
        let deployment = first.deployment.unwrap();
        let requests = deployment.spec.template.spec.as_ref().unwrap().containers[0]
            .resources
            .clone()
            .unwrap()
            .requests
            .unwrap();
        assert_eq!(
            requests["cpu"].0, "500m",
            "the server canonicalised the quantity"
        );
        let observed = deployment.spec.replicas;

        let second = apply_children(&client, &state, &children(None, observed))
            .await
            .unwrap();
        assert!(second.applied.is_empty(), "{:?}", second.applied);
        assert!(second.deployment.is_some());
        assert_eq!(writes(&state), Vec::<String>::new());
    }

    #[tokio::test]
    async fn the_autoscaler_moving_replicas_makes_no_write() {
        let (client, state) = start().await;
        apply_children(&client, &state, &children(None, None))
            .await
            .unwrap();
        writes(&state);
        state.lock().unwrap().objects.get_mut(DEPLOYMENT).unwrap()["spec"]["replicas"] = json!(40);
        let report = apply_children(&client, &state, &children(None, Some(40)))
            .await
            .unwrap();
        assert!(report.applied.is_empty());
        assert_eq!(report.deployment.unwrap().spec.replicas, Some(40));
    }

    #[tokio::test]
    async fn a_hand_edit_is_corrected_on_the_next_reconcile() {
        let (client, state) = start().await;
        apply_children(&client, &state, &children(None, None))
            .await
            .unwrap();
        writes(&state);
        state.lock().unwrap().objects.get_mut(DEPLOYMENT).unwrap()["spec"]["template"]["spec"]["containers"]
            [0]["image"] = json!("evil/orders:latest");
        let report = apply_children(&client, &state, &children(None, Some(13)))
            .await
            .unwrap();
        assert_eq!(report.applied, vec!["Deployment/acme-us-east-1-orders"]);
        let deployment = report.deployment.unwrap();
        let image = deployment.spec.template.spec.as_ref().unwrap().containers[0]
            .image
            .clone();
        assert_eq!(
            image.as_deref(),
            Some("registry.example.com/acme/orders:1.4.2")
        );
    }

    #[tokio::test]
    async fn a_pdb_no_longer_wanted_is_deleted_once() {
        let (client, state) = start().await;
        apply_children(&client, &state, &children(None, None))
            .await
            .unwrap();
        writes(&state);
        let single = children(Some(1), Some(13));
        assert!(single.pdb.is_none());
        let report = apply_children(&client, &state, &single).await.unwrap();
        assert_eq!(
            report.deleted,
            vec!["PodDisruptionBudget/acme-us-east-1-orders"]
        );
        assert!(!state.lock().unwrap().objects.contains_key(PDB));
        writes(&state);
        let again = apply_children(&client, &state, &single).await.unwrap();
        assert!(again.deleted.is_empty() && again.applied.is_empty());
        assert!(writes(&state).is_empty());
    }

    #[tokio::test]
    async fn a_pdb_that_is_not_ours_is_left_alone() {
        let (client, state) = start().await;
        state.lock().unwrap().objects.insert(
            PDB.to_string(),
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                   "metadata": {"name": "acme-us-east-1-orders", "namespace": "shop"},
                   "spec": {"maxUnavailable": 1}}),
        );
        let report = apply_children(&client, &state, &children(Some(1), None))
            .await
            .unwrap();
        assert!(report.deleted.is_empty());
        assert!(state.lock().unwrap().objects.contains_key(PDB));
    }
}

#[cfg(test)]
mod not_synced_tests {
    use super::*;

    #[test]
    fn caches_that_never_listed_are_named_with_their_watch_failures_and_a_refusal_is_singled_out() {
        let refused = WatchFailure {
            message: "horizontalpodautoscalers.autoscaling is forbidden: User \"x\" cannot list \
                      resource \"horizontalpodautoscalers\""
                .into(),
            forbidden: true,
        };
        let timed_out = WatchFailure {
            message: "watch stream failed: timed out".into(),
            forbidden: false,
        };
        let not_synced = NotSynced::of(&[
            ("configmaps", true, None),
            ("deployments", false, Some(timed_out)),
            ("poddisruptionbudgets", false, None),
            ("horizontalpodautoscalers", false, Some(refused.clone())),
        ]);
        assert_eq!(
            not_synced.resources,
            [
                "deployments",
                "poddisruptionbudgets",
                "horizontalpodautoscalers"
            ]
        );
        assert_eq!(not_synced.forbidden, Some(refused.message.clone()));
        let said = not_synced.to_string();
        assert!(
            said.contains("deployments: watch stream failed: timed out"),
            "{said}"
        );
        assert!(said.contains(&refused.message), "{said}");
        let quiet = NotSynced::of(&[("services", false, None)]);
        assert_eq!(quiet.forbidden, None);
        assert!(quiet.to_string().contains("report no error yet"));
        assert_eq!(
            NotSynced::of(&[]).to_string(),
            "the operator's caches of the children are not running"
        );
        assert!(
            NotSynced::of(&[("services", true, Some(refused))])
                .forbidden
                .is_none(),
            "a cache that listed since is not reported"
        );
    }
}
