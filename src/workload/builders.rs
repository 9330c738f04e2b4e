//! Pure builders of a ShopRegion's children. No I/O: each takes the
//! ShopRegion and what the reconciler decided, and returns the object to
//! apply, stamped with its `shopfleet.io/applied-hash`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretKeySelector, SecurityContext, Service, ServicePort,
    ServiceSpec, TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use serde::Serialize;

use super::capacity::Capacity;
use super::diff::{APPLIED_HASH_ANNOTATION, applied_hash};
use super::topology::{Topology, keys};
use crate::api::ShopRegion;

/// Field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "shopfleet";
/// Where the pods find the live topology (role, writer region, the
/// endpoints as AWS names them): the ConfigMap mounted as files, which the
/// kubelet refreshes without a restart.
pub const TOPOLOGY_MOUNT_PATH: &str = "/etc/shopfleet/topology";
/// On the pod template: the fingerprint of the Redis AUTH token its pods
/// read at start. A new token changes it, so the pods roll to the new token
/// while the replication group accepts both.
pub const CACHE_AUTH_TOKEN_ANNOTATION: &str = "shopfleet.io/cache-auth-token";
/// The port of the cache primary behind the stable name: ElastiCache's
/// default, which the operator never changes.
pub const CACHE_PORT: u16 = 6379;
pub const MANAGED_BY: &str = "shopfleet";
pub const CONTAINER_NAME: &str = "orders";
pub const PORT_NAME: &str = "http";
pub const READINESS_PATH: &str = "/healthz/ready";
pub const LIVENESS_PATH: &str = "/healthz/live";
/// CPU utilisation the autoscaler aims at. Well below saturation, so that a
/// replica still meets the latency target while new replicas start.
pub const TARGET_CPU_UTILIZATION: i32 = 60;
/// The uid the container runs as when the image does not say (the
/// distroless `nonroot` user). A numeric uid lets the kubelet verify
/// `runAsNonRoot` for images whose `USER` is a name.
pub const RUN_AS_USER: i64 = 65532;

pub mod labels {
    pub const NAME: &str = "app.kubernetes.io/name";
    pub const INSTANCE: &str = "app.kubernetes.io/instance";
    pub const PART_OF: &str = "app.kubernetes.io/part-of";
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const SHOP: &str = "shopfleet.io/shop";
    pub const REGION: &str = "shopfleet.io/region";
}

/// What the builders need besides the ShopRegion itself.
#[derive(Clone, Copy, Debug)]
pub struct WorkloadInputs<'a> {
    pub region: &'a ShopRegion,
    pub topology: &'a Topology,
    pub capacity: Capacity,
    /// True while another region of the fleet is lost and this one holds
    /// `capacity.absorbing_min_replicas`.
    pub absorbing: bool,
    /// `spec.replicas` of the Deployment as observed, if it exists.
    pub observed_replicas: Option<i32>,
}

impl WorkloadInputs<'_> {
    /// The minimum in force: the absorbing minimum while absorbing.
    pub fn effective_min_replicas(&self) -> i32 {
        if self.absorbing {
            self.capacity.absorbing_min_replicas
        } else {
            self.capacity.min_replicas
        }
    }
}

/// Every child of a ShopRegion. `pdb` is `None` when the workload may run a
/// single replica; the apply layer then deletes an existing one.
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    pub configmap: ConfigMap,
    pub deployment: Deployment,
    pub service: Service,
    /// `None` until the cache primary is known.
    pub cache_primary: Option<Service>,
    pub pdb: Option<PodDisruptionBudget>,
    pub hpa: HorizontalPodAutoscaler,
}

pub fn desired_children(inputs: &WorkloadInputs<'_>) -> Children {
    Children {
        configmap: topology_configmap(inputs),
        deployment: deployment(inputs),
        service: service(inputs),
        cache_primary: cache_primary_service(inputs),
        pdb: pod_disruption_budget(inputs),
        hpa: horizontal_pod_autoscaler(inputs),
    }
}

/// `<sr-name>-orders`: the Deployment, Service, PDB and HPA.
pub fn workload_name(region: &ShopRegion) -> String {
    format!(
        "{}-orders",
        region.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `<sr-name>-topology`: the topology ConfigMap.
pub fn topology_name(region: &ShopRegion) -> String {
    format!(
        "{}-topology",
        region.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Labels on every child and on the pods.
pub fn common_labels(region: &ShopRegion) -> BTreeMap<String, String> {
    let mut labels = selector_labels(region);
    labels.extend([
        (labels::PART_OF.to_string(), region.spec.shop.clone()),
        (labels::MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        (labels::SHOP.to_string(), region.spec.shop.clone()),
        (labels::REGION.to_string(), region.spec.region.clone()),
    ]);
    labels
}

/// The pod selector. Only labels that never change for a ShopRegion: a
/// Deployment's selector is immutable.
pub fn selector_labels(region: &ShopRegion) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::NAME.to_string(), "orders".to_string()),
        (
            labels::INSTANCE.to_string(),
            region.metadata.name.clone().unwrap_or_default(),
        ),
    ])
}

fn owner_reference(region: &ShopRegion) -> Option<OwnerReference> {
    // The ShopRegion's deletion waits for its children (foreground deletion)
    // and garbage collection removes them; without a uid (an object never
    // stored) there is nothing to reference.
    region
        .controller_owner_ref(&())
        .map(|owner| OwnerReference {
            block_owner_deletion: Some(true),
            ..owner
        })
}

fn metadata(region: &ShopRegion, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: region.metadata.namespace.clone(),
        labels: Some(common_labels(region)),
        owner_references: owner_reference(region).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// Puts the applied-hash annotation on a built object.
fn stamp<K: Resource + Serialize>(mut object: K) -> K {
    let value = serde_json::to_value(&object).expect("Kubernetes objects always serialise");
    object
        .meta_mut()
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(APPLIED_HASH_ANNOTATION.to_string(), applied_hash(&value));
    object
}

pub fn topology_configmap(inputs: &WorkloadInputs<'_>) -> ConfigMap {
    stamp(ConfigMap {
        metadata: metadata(inputs.region, topology_name(inputs.region)),
        data: Some(inputs.topology.data()),
        ..ConfigMap::default()
    })
}

/// Requests used when the spec gives none. The HPA computes CPU utilisation
/// against the CPU request, so a container without one cannot be autoscaled.
/// No CPU limit: throttling a latency-bound service at peak costs more than
/// it protects. The memory limit equals the request, so an order pod is never
/// the first one the kubelet evicts under memory pressure for overshooting.
pub fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("500m".into())),
            ("memory".to_string(), Quantity("512Mi".into())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_string(),
            Quantity("512Mi".into()),
        )])),
        ..ResourceRequirements::default()
    }
}

/// The spec's resources, or the defaults. When the spec names neither a CPU
/// request nor a CPU limit (from which Kubernetes derives the request), the
/// default CPU request is added so the CPU autoscaler works.
fn container_resources(inputs: &WorkloadInputs<'_>) -> ResourceRequirements {
    let Some(mut resources) = inputs.region.spec.orders.resources.clone() else {
        return default_resources();
    };
    let has_cpu = |list: &Option<BTreeMap<String, Quantity>>| {
        list.as_ref().is_some_and(|l| l.contains_key("cpu"))
    };
    if !has_cpu(&resources.requests) && !has_cpu(&resources.limits) {
        resources
            .requests
            .get_or_insert_with(BTreeMap::new)
            .insert("cpu".to_string(), Quantity("500m".into()));
    }
    resources
}

/// The replicas the Deployment is given.
///
/// shopfleet owns `spec.replicas` (server-side apply would otherwise reset it
/// to whatever we sent last), but copies the observed value whenever it lies
/// within the autoscaler's bounds, so the HPA moves it freely. Outside the
/// bounds it is clamped: a hand `kubectl scale` to 1 is undone on the next
/// reconcile, and raising the minimum to absorb a lost region takes effect at
/// once instead of when the HPA next syncs.
pub fn desired_replicas(inputs: &WorkloadInputs<'_>) -> i32 {
    let min = inputs.effective_min_replicas();
    let max = inputs.capacity.max_replicas.max(min);
    inputs.observed_replicas.unwrap_or(min).clamp(min, max)
}

fn http_probe(path: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String(PORT_NAME.to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

fn topology_spread(region: &ShopRegion) -> Vec<TopologySpreadConstraint> {
    let selector = Some(LabelSelector {
        match_labels: Some(selector_labels(region)),
        ..LabelSelector::default()
    });
    vec![
        // Zones: a hard constraint, so a zone loss never takes more than a
        // third of the pods. `nodeTaintsPolicy: Honor` leaves the tainted
        // (unreachable) nodes of a lost zone out of the skew, so the
        // survivors can still scale up while a zone is down.
        TopologySpreadConstraint {
            topology_key: "topology.kubernetes.io/zone".into(),
            max_skew: 1,
            when_unsatisfiable: "DoNotSchedule".into(),
            label_selector: selector.clone(),
            node_taints_policy: Some("Honor".into()),
            match_label_keys: Some(vec!["pod-template-hash".into()]),
            ..TopologySpreadConstraint::default()
        },
        // Nodes: a preference only; at max replicas there can be more pods
        // than nodes, and a flash sale must not wait for the cluster
        // autoscaler.
        TopologySpreadConstraint {
            topology_key: "kubernetes.io/hostname".into(),
            max_skew: 1,
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: selector,
            match_label_keys: Some(vec!["pod-template-hash".into()]),
            ..TopologySpreadConstraint::default()
        },
    ]
}

/// The pods' environment: only names that stay the same through a
/// failover or a switchover, so that a change of writer changes no pod
/// template and rolls no pod while the survivors absorb the lost region.
/// The database writer is the global writer endpoint (AWS re-points it);
/// the cache primary is this region's ExternalName Service (the operator
/// re-points it); the readers are this region's own. The role and the
/// writer region change: they are in the mounted topology files. The
/// spec's own `env` comes last and wins over a name of the same name.
pub fn order_env(inputs: &WorkloadInputs<'_>) -> Vec<EnvVar> {
    let topology = inputs.topology;
    let region = inputs.region;
    let namespace = region.metadata.namespace.as_deref().unwrap_or("default");
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let stable = [
        (keys::SHOP, topology.shop.clone()),
        (keys::REGION, topology.region.clone()),
        (
            keys::DATABASE_WRITER_ENDPOINT,
            opt(&topology.database_writer_endpoint),
        ),
        (
            keys::DATABASE_READER_ENDPOINT,
            opt(&topology.database_reader_endpoint),
        ),
        (
            keys::CACHE_PRIMARY_ENDPOINT,
            format!(
                "{}.{namespace}.svc:{CACHE_PORT}",
                cache_primary_name(region)
            ),
        ),
        (
            keys::CACHE_READER_ENDPOINT,
            opt(&topology.cache_reader_endpoint),
        ),
        ("TOPOLOGY_DIR", TOPOLOGY_MOUNT_PATH.to_string()),
    ];
    let own = &region.spec.orders.env;
    // The master Secret is the same in every region and through every
    // failover (secondaries replicate the primary's users), so its name is
    // stable too. Not optional: a pod without credentials cannot serve.
    let cache_auth = region
        .spec
        .cache
        .auth_secret_ref
        .iter()
        .map(|reference| EnvVar {
            name: keys::CACHE_AUTH_TOKEN.to_string(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: reference.name.clone(),
                    key: reference.key.clone(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
    let credentials = topology.database_master_secret.iter().flat_map(|secret| {
        [
            (keys::DATABASE_USERNAME, "username"),
            (keys::DATABASE_PASSWORD, "password"),
        ]
        .map(|(name, key)| EnvVar {
            name: name.to_string(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.clone(),
                    key: key.to_string(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        })
    });
    stable
        .into_iter()
        .map(|(name, value)| EnvVar {
            name: name.to_string(),
            value: Some(value),
            ..EnvVar::default()
        })
        .chain(credentials)
        .chain(cache_auth)
        .filter(|env| !own.iter().any(|e| e.name == env.name))
        .chain(own.iter().cloned())
        .collect()
}

fn order_container(inputs: &WorkloadInputs<'_>) -> Container {
    let orders = &inputs.region.spec.orders;
    Container {
        name: CONTAINER_NAME.into(),
        image: Some(orders.image.clone()),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.into()),
            container_port: orders.port,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        env: Some(order_env(inputs)),
        resources: Some(container_resources(inputs)),
        readiness_probe: Some(http_probe(READINESS_PATH, 5, 3)),
        liveness_probe: Some(Probe {
            // Give a slow start time before the kubelet restarts the pod.
            initial_delay_seconds: Some(10),
            ..http_probe(LIVENESS_PATH, 10, 3)
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            // A read-only root filesystem still needs somewhere for temp
            // files.
            VolumeMount {
                name: "tmp".into(),
                mount_path: "/tmp".into(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "topology".into(),
                mount_path: TOPOLOGY_MOUNT_PATH.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    }
}

pub fn deployment(inputs: &WorkloadInputs<'_>) -> Deployment {
    let region = inputs.region;
    stamp(Deployment {
        metadata: metadata(region, workload_name(region)),
        spec: DeploymentSpec {
            replicas: Some(desired_replicas(inputs)),
            selector: LabelSelector {
                match_labels: Some(selector_labels(region)),
                ..LabelSelector::default()
            },
            // Never below the desired count during a rollout (so never below
            // what the PDB protects); a quarter more pods at a time.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::String("25%".into())),
                }),
            }),
            // A stuck rollout (an image that cannot be pulled) is reported
            // as ProgressDeadlineExceeded after five minutes, not ten.
            progress_deadline_seconds: Some(300),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(common_labels(region)),
                    annotations: inputs.topology.cache_auth_token.as_ref().map(|token| {
                        BTreeMap::from([(CACHE_AUTH_TOKEN_ANNOTATION.to_string(), token.clone())])
                    }),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![order_container(inputs)],
                    // The order service does not call the Kubernetes API.
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_AS_USER),
                        run_as_group: Some(RUN_AS_USER),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    topology_spread_constraints: Some(topology_spread(region)),
                    volumes: Some(vec![
                        Volume {
                            name: "tmp".into(),
                            empty_dir: Some(EmptyDirVolumeSource {
                                size_limit: Some(Quantity("64Mi".into())),
                                ..EmptyDirVolumeSource::default()
                            }),
                            ..Volume::default()
                        },
                        Volume {
                            name: "topology".into(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: topology_name(region),
                                optional: Some(false),
                                ..ConfigMapVolumeSource::default()
                            }),
                            ..Volume::default()
                        },
                    ]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    })
}

pub fn service(inputs: &WorkloadInputs<'_>) -> Service {
    let region = inputs.region;
    stamp(Service {
        metadata: metadata(region, workload_name(region)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(region)),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.into()),
                port: inputs.region.spec.orders.port,
                target_port: Some(IntOrString::String(PORT_NAME.into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// `<sr-name>-cache-primary`: the stable name of the cache primary.
pub fn cache_primary_name(region: &ShopRegion) -> String {
    format!(
        "{}-cache-primary",
        region.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The ExternalName Service behind the pods' cache primary name, pointed at
/// the host of the Global Datastore's primary endpoint; `None` until that is
/// known. Pods resolve it at connection time: a moved primary is reached
/// once the cluster DNS's TTL (CoreDNS: 5 s) has passed, without a restart.
pub fn cache_primary_service(inputs: &WorkloadInputs<'_>) -> Option<Service> {
    let endpoint = inputs.topology.cache_primary_endpoint.as_deref()?;
    let host = endpoint.rsplit_once(':').map_or(endpoint, |(host, _)| host);
    let region = inputs.region;
    Some(stamp(Service {
        metadata: metadata(region, cache_primary_name(region)),
        spec: Some(ServiceSpec {
            type_: Some("ExternalName".into()),
            external_name: Some(host.to_string()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }))
}

/// `maxUnavailable: 1` rather than `minAvailable`: it follows the replica
/// count as the HPA moves it, so a drain of a scaled-up region evicts one pod
/// at a time instead of everything above the minimum at once, and it always
/// lets a drain make progress. `None` when the workload may run one replica:
/// a budget over a single pod either blocks every drain or protects nothing.
pub fn pod_disruption_budget(inputs: &WorkloadInputs<'_>) -> Option<PodDisruptionBudget> {
    if inputs.effective_min_replicas() < 2 {
        return None;
    }
    let region = inputs.region;
    Some(stamp(PodDisruptionBudget {
        metadata: metadata(region, workload_name(region)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(region)),
                ..LabelSelector::default()
            }),
            // Pods that never became ready (a bad image) must not block node
            // drains: they serve nothing.
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }))
}

pub fn horizontal_pod_autoscaler(inputs: &WorkloadInputs<'_>) -> HorizontalPodAutoscaler {
    let region = inputs.region;
    let min = inputs.effective_min_replicas();
    let policy = |type_: &str, value: i32, period_seconds: i32| HPAScalingPolicy {
        type_: type_.into(),
        value,
        period_seconds,
    };
    stamp(HorizontalPodAutoscaler {
        metadata: metadata(region, workload_name(region)),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: workload_name(region),
            },
            min_replicas: Some(min),
            max_replicas: inputs.capacity.max_replicas.max(min),
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(TARGET_CPU_UTILIZATION),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            behavior: Some(HorizontalPodAutoscalerBehavior {
                // A flash sale: react at once, double every 15 s (or add 8
                // pods when the count is small), whichever adds more.
                scale_up: Some(HPAScalingRules {
                    stabilization_window_seconds: Some(0),
                    select_policy: Some("Max".into()),
                    policies: Some(vec![policy("Percent", 100, 15), policy("Pods", 8, 15)]),
                    ..HPAScalingRules::default()
                }),
                // After the sale: wait five minutes of lower load, then give
                // back at most 10 % a minute, so a second wave finds the pods
                // still there.
                scale_down: Some(HPAScalingRules {
                    stabilization_window_seconds: Some(300),
                    select_policy: Some("Max".into()),
                    policies: Some(vec![policy("Percent", 10, 60)]),
                    ..HPAScalingRules::default()
                }),
            }),
        },
        ..HorizontalPodAutoscaler::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fixtures::acme_region;
    use crate::api::{RegionRole, ShopRegion};
    use crate::workload::capacity::plan_capacity;
    use crate::workload::diff::needs_apply;
    use k8s_openapi::api::core::v1::EnvVar;
    use serde_json::{Value, json};

    struct Fixture {
        region: ShopRegion,
        topology: Topology,
    }

    fn us_east_1() -> Fixture {
        let region = acme_region("us-east-1");
        let topology = Topology::new(&region.spec, RegionRole::Primary);
        Fixture { region, topology }
    }

    impl Fixture {
        fn inputs(&self) -> WorkloadInputs<'_> {
            WorkloadInputs {
                region: &self.region,
                topology: &self.topology,
                // acme: baseline 5,000, peak 20,000 → 13 / 75 / 38.
                capacity: plan_capacity(&self.region.spec.orders, 3),
                absorbing: false,
                observed_replicas: None,
            }
        }
    }

    fn pod_spec(d: &Deployment) -> &PodSpec {
        d.spec.template.spec.as_ref().unwrap()
    }

    fn container(d: &Deployment) -> &Container {
        &pod_spec(d).containers[0]
    }

    fn to_json<T: Serialize>(object: &T) -> Value {
        serde_json::to_value(object).unwrap()
    }

    fn all_children(children: &Children) -> Vec<Value> {
        let mut all = vec![
            to_json(&children.configmap),
            to_json(&children.deployment),
            to_json(&children.service),
            to_json(&children.hpa),
        ];
        all.extend(children.pdb.as_ref().map(to_json));
        all
    }

    #[test]
    fn every_child_is_named_labelled_and_owned_by_its_shop_region() {
        let f = us_east_1();
        let children = desired_children(&f.inputs());
        for child in all_children(&children) {
            let kind = child["kind"].as_str().unwrap();
            let expected_name = if kind == "ConfigMap" {
                "acme-us-east-1-topology"
            } else {
                "acme-us-east-1-orders"
            };
            let meta = &child["metadata"];
            assert_eq!(meta["name"], expected_name, "{kind}");
            assert_eq!(meta["namespace"], "shop", "{kind}");
            assert_eq!(
                meta["labels"],
                json!({
                    "app.kubernetes.io/name": "orders",
                    "app.kubernetes.io/instance": "acme-us-east-1",
                    "app.kubernetes.io/part-of": "acme",
                    "app.kubernetes.io/managed-by": "shopfleet",
                    "shopfleet.io/shop": "acme",
                    "shopfleet.io/region": "us-east-1",
                }),
                "{kind}"
            );
            assert_eq!(
                meta["ownerReferences"],
                json!([{
                    "apiVersion": "shopfleet.io/v1alpha1",
                    "kind": "ShopRegion",
                    "name": "acme-us-east-1",
                    "uid": "uid-acme-us-east-1",
                    "controller": true,
                    "blockOwnerDeletion": true,
                }]),
                "{kind}"
            );
            assert_eq!(
                meta["annotations"][APPLIED_HASH_ANNOTATION]
                    .as_str()
                    .map(str::len),
                Some(64),
                "{kind}"
            );
        }
    }

    #[test]
    fn children_serialise_into_valid_kubernetes_objects() {
        let f = us_east_1();
        let children = desired_children(&f.inputs());
        let d: Deployment = serde_json::from_value(to_json(&children.deployment)).unwrap();
        assert_eq!(d, children.deployment);
        let spec = &d.spec;
        // The API server refuses a Deployment whose selector does not select
        // its own pod template.
        let template_labels = spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .clone()
            .unwrap();
        for (k, v) in spec.selector.match_labels.as_ref().unwrap() {
            assert_eq!(template_labels.get(k), Some(v));
        }
        let service_selector = children
            .service
            .spec
            .as_ref()
            .unwrap()
            .selector
            .clone()
            .unwrap();
        assert_eq!(
            &service_selector,
            spec.selector.match_labels.as_ref().unwrap()
        );
        let pdb_selector = children
            .pdb
            .as_ref()
            .unwrap()
            .spec
            .as_ref()
            .unwrap()
            .selector
            .clone();
        assert_eq!(pdb_selector.as_ref(), Some(&spec.selector));
        let hpa: HorizontalPodAutoscaler = serde_json::from_value(to_json(&children.hpa)).unwrap();
        assert_eq!(hpa, children.hpa);
        let pdb: PodDisruptionBudget =
            serde_json::from_value(to_json(children.pdb.as_ref().unwrap())).unwrap();
        assert_eq!(pdb.metadata.name.as_deref(), Some("acme-us-east-1-orders"));
        assert_eq!(to_json(&children.hpa)["apiVersion"], "autoscaling/v2");
        assert_eq!(to_json(&pdb)["apiVersion"], "policy/v1");
    }

    #[test]
    fn a_converged_child_needs_no_apply_and_rebuilding_is_deterministic() {
        let f = us_east_1();
        let first = desired_children(&f.inputs());
        let second = desired_children(&f.inputs());
        assert_eq!(first, second);
        for child in all_children(&first) {
            assert!(!needs_apply(&child, Some(&child)), "{}", child["kind"]);
        }
    }

    #[test]
    fn the_order_container_runs_the_spec_image_on_the_spec_port() {
        let mut f = us_east_1();
        f.region.spec.orders.port = 9090;
        f.region.spec.orders.env = vec![EnvVar {
            name: "LOG_LEVEL".into(),
            value: Some("info".into()),
            ..EnvVar::default()
        }];
        let d = deployment(&f.inputs());
        let c = container(&d);
        assert_eq!(
            c.image.as_deref(),
            Some("registry.example.com/acme/orders:1.4.2")
        );
        let port = &c.ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.container_port),
            (Some("http"), 9090)
        );
        let env = c.env.as_ref().unwrap();
        assert_eq!(env.last().unwrap().name, "LOG_LEVEL");
        assert!(env.iter().any(|e| e.name == "TOPOLOGY_DIR"));
        let s = service(&f.inputs());
        let sp = &s.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
        assert_eq!(sp.port, 9090);
        assert_eq!(sp.target_port, Some(IntOrString::String("http".into())));
    }

    #[test]
    fn an_env_entry_of_the_spec_wins_over_the_operators_of_the_same_name() {
        let mut f = us_east_1();
        f.region.spec.orders.env = vec![EnvVar {
            name: "DATABASE_WRITER_ENDPOINT".into(),
            value: Some("proxy.internal".into()),
            ..EnvVar::default()
        }];
        let d = deployment(&f.inputs());
        let writers: Vec<&EnvVar> = container(&d)
            .env
            .as_ref()
            .unwrap()
            .iter()
            .filter(|e| e.name == "DATABASE_WRITER_ENDPOINT")
            .collect();
        assert_eq!(writers.len(), 1);
        assert_eq!(writers[0].value.as_deref(), Some("proxy.internal"));
    }

    #[test]
    fn probes_check_readiness_and_liveness_on_the_service_port() {
        let f = us_east_1();
        let d = deployment(&f.inputs());
        let c = container(&d);
        for (probe, path) in [
            (c.readiness_probe.as_ref().unwrap(), READINESS_PATH),
            (c.liveness_probe.as_ref().unwrap(), LIVENESS_PATH),
        ] {
            let get = probe.http_get.as_ref().unwrap();
            assert_eq!(get.path.as_deref(), Some(path));
            assert_eq!(get.port, IntOrString::String("http".into()));
        }
    }

    #[test]
    fn pods_meet_the_restricted_pod_security_standard() {
        let f = us_east_1();
        let d = deployment(&f.inputs());
        let pod = pod_spec(&d).security_context.as_ref().unwrap();
        assert_eq!(pod.run_as_non_root, Some(true));
        assert_eq!(
            pod.seccomp_profile.as_ref().unwrap().type_,
            "RuntimeDefault"
        );
        let c = container(&d).security_context.as_ref().unwrap();
        assert_eq!(c.allow_privilege_escalation, Some(false));
        assert_eq!(c.read_only_root_filesystem, Some(true));
        assert_eq!(c.run_as_non_root, Some(true));
        assert_eq!(
            c.capabilities.as_ref().unwrap().drop,
            Some(vec!["ALL".to_string()])
        );
        assert_eq!(c.capabilities.as_ref().unwrap().add, None);
        assert_eq!(pod_spec(&d).automount_service_account_token, Some(false));
        // The read-only root filesystem gets a writable /tmp.
        assert_eq!(
            container(&d).volume_mounts.as_ref().unwrap()[0].mount_path,
            "/tmp"
        );
    }

    #[test]
    fn pods_spread_across_zones_and_nodes() {
        let f = us_east_1();
        let d = deployment(&f.inputs());
        let spread = pod_spec(&d).topology_spread_constraints.as_ref().unwrap();
        let keys: Vec<(&str, &str)> = spread
            .iter()
            .map(|c| (c.topology_key.as_str(), c.when_unsatisfiable.as_str()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("topology.kubernetes.io/zone", "DoNotSchedule"),
                ("kubernetes.io/hostname", "ScheduleAnyway"),
            ]
        );
        for c in spread {
            assert_eq!(c.max_skew, 1);
            assert_eq!(
                c.label_selector.as_ref().unwrap().match_labels,
                Some(selector_labels(&f.region))
            );
        }
    }

    #[test]
    fn a_rollout_never_drops_below_the_desired_count() {
        let f = us_east_1();
        let d = deployment(&f.inputs());
        let strategy = d.spec.strategy.as_ref().unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
        let rolling = strategy.rolling_update.as_ref().unwrap();
        assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
        assert_eq!(rolling.max_surge, Some(IntOrString::String("25%".into())));
    }

    #[test]
    fn pods_take_their_credentials_from_secrets_and_a_new_cache_token_rolls_them() {
        let mut f = us_east_1();
        f.region.spec.cache.auth_secret_ref = Some(crate::api::SecretKeyRef {
            name: "acme-redis-auth".into(),
            key: "token".into(),
        });
        f.topology.database_master_secret = Some("acme-database-master".into());
        f.topology.cache_auth_token = Some("00aa00aa00aa00aa".into());
        let d = deployment(&f.inputs());
        let env = container(&d).env.clone().unwrap();
        let from_secret = |name: &str| {
            env.iter()
                .find(|e| e.name == name)
                .and_then(|e| e.value_from.as_ref())
                .and_then(|v| v.secret_key_ref.as_ref())
                .map(|r| (r.name.clone(), r.key.clone()))
        };
        assert_eq!(
            from_secret("DATABASE_PASSWORD"),
            Some(("acme-database-master".into(), "password".into()))
        );
        assert_eq!(
            from_secret("DATABASE_USERNAME"),
            Some(("acme-database-master".into(), "username".into()))
        );
        assert_eq!(
            from_secret("CACHE_AUTH_TOKEN"),
            Some(("acme-redis-auth".into(), "token".into()))
        );
        let template = |f: &Fixture| deployment(&f.inputs()).spec.template;
        let before = template(&f);
        assert_eq!(
            before
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()[CACHE_AUTH_TOKEN_ANNOTATION],
            "00aa00aa00aa00aa"
        );
        f.topology.cache_auth_token = Some("11bb11bb11bb11bb".into());
        assert_ne!(template(&f), before, "a new token rolls the pods");
    }

    #[test]
    fn a_change_of_writer_changes_no_pod_template_and_rolls_no_pod() {
        let mut before = us_east_1();
        before.topology.writer_region = Some("us-east-1".into());
        before.topology.database_writer_endpoint =
            Some("acme-global.global-abc.global.rds.amazonaws.com".into());
        before.topology.cache_primary_endpoint =
            Some("master.acme-us-east-1.abc.use1.cache.amazonaws.com:6379".into());
        let mut after = us_east_1();
        after.topology = Topology {
            role: RegionRole::Secondary,
            writer_region: Some("eu-west-1".into()),
            cache_primary_endpoint: Some(
                "master.acme-eu-west-1.abc.euw1.cache.amazonaws.com:6379".into(),
            ),
            ..before.topology.clone()
        };
        let template = |f: &Fixture| deployment(&f.inputs()).spec.template;
        assert_eq!(template(&before), template(&after));
        // The ConfigMap and the cache primary's name follow the new writer.
        assert_eq!(
            topology_configmap(&after.inputs()).data.unwrap()["WRITER_REGION"],
            "eu-west-1"
        );
        let external = |f: &Fixture| {
            cache_primary_service(&f.inputs())
                .unwrap()
                .spec
                .unwrap()
                .external_name
                .unwrap()
        };
        assert_eq!(
            external(&before),
            "master.acme-us-east-1.abc.use1.cache.amazonaws.com"
        );
        assert_eq!(
            external(&after),
            "master.acme-eu-west-1.abc.euw1.cache.amazonaws.com"
        );
    }

    #[test]
    fn the_pods_reach_the_writers_through_names_that_outlive_a_failover() {
        let mut f = us_east_1();
        f.topology.database_writer_endpoint =
            Some("acme-global.global-abc.global.rds.amazonaws.com".into());
        let d = deployment(&f.inputs());
        let env: BTreeMap<String, String> = container(&d)
            .env
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            env["DATABASE_WRITER_ENDPOINT"],
            "acme-global.global-abc.global.rds.amazonaws.com"
        );
        assert_eq!(
            env["CACHE_PRIMARY_ENDPOINT"],
            "acme-us-east-1-cache-primary.shop.svc:6379"
        );
        assert!(
            !env.contains_key("ROLE"),
            "the role changes: it is in the mounted files"
        );
        let mount = container(&d)
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.name == "topology")
            .unwrap();
        assert_eq!(mount.mount_path, TOPOLOGY_MOUNT_PATH);
        // No cache primary known yet: no Service to point anywhere.
        assert_eq!(cache_primary_service(&f.inputs()), None);
    }

    #[test]
    fn the_topology_configmap_publishes_role_and_endpoints() {
        let f = us_east_1();
        let cm = topology_configmap(&f.inputs());
        let data = cm.data.unwrap();
        assert_eq!(data["SHOP"], "acme");
        assert_eq!(data["REGION"], "us-east-1");
        assert_eq!(data["ROLE"], "primary");
        assert_eq!(data["CACHE_PRIMARY_ENDPOINT"], "");
    }

    #[test]
    fn default_requests_make_the_cpu_autoscaler_work() {
        let f = us_east_1();
        let d = deployment(&f.inputs());
        let resources = container(&d).resources.clone().unwrap();
        assert_eq!(resources, default_resources());
        assert_eq!(resources.requests.unwrap()["cpu"], Quantity("500m".into()));
        assert!(!resources.limits.unwrap().contains_key("cpu"));
    }

    #[test]
    fn spec_resources_are_used_as_given() {
        let mut f = us_east_1();
        let given = ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".into(), Quantity("2".into())),
                ("memory".into(), Quantity("2Gi".into())),
            ])),
            ..ResourceRequirements::default()
        };
        f.region.spec.orders.resources = Some(given.clone());
        assert_eq!(container(&deployment(&f.inputs())).resources, Some(given));
    }

    #[test]
    fn spec_resources_without_cpu_get_the_default_cpu_request() {
        let mut f = us_east_1();
        f.region.spec.orders.resources = Some(ResourceRequirements {
            limits: Some(BTreeMap::from([("memory".into(), Quantity("1Gi".into()))])),
            ..ResourceRequirements::default()
        });
        let resources = container(&deployment(&f.inputs()))
            .resources
            .clone()
            .unwrap();
        assert_eq!(resources.requests.unwrap()["cpu"], Quantity("500m".into()));
        assert_eq!(resources.limits.unwrap()["memory"], Quantity("1Gi".into()));
    }

    fn replicas_for(observed: Option<i32>, absorbing: bool) -> i32 {
        let f = us_east_1();
        let inputs = WorkloadInputs {
            observed_replicas: observed,
            absorbing,
            ..f.inputs()
        };
        deployment(&inputs).spec.replicas.unwrap()
    }

    #[test]
    fn a_new_deployment_starts_at_the_minimum() {
        assert_eq!(replicas_for(None, false), 13);
    }

    #[test]
    fn the_autoscaler_moves_replicas_freely_within_the_bounds() {
        assert_eq!(replicas_for(Some(40), false), 40);
        assert_eq!(replicas_for(Some(13), false), 13);
        assert_eq!(replicas_for(Some(75), false), 75);
    }

    #[test]
    fn a_hand_scale_outside_the_bounds_is_restored() {
        assert_eq!(replicas_for(Some(1), false), 13);
        assert_eq!(replicas_for(Some(0), false), 13);
        assert_eq!(replicas_for(Some(500), false), 75);
    }

    #[test]
    fn absorbing_a_lost_region_raises_the_floor_at_once() {
        assert_eq!(replicas_for(Some(13), true), 38);
        assert_eq!(replicas_for(None, true), 38);
        // Already above the absorbing floor: left to the autoscaler.
        assert_eq!(replicas_for(Some(60), true), 60);
        let f = us_east_1();
        let hpa = horizontal_pod_autoscaler(&WorkloadInputs {
            absorbing: true,
            ..f.inputs()
        });
        assert_eq!(hpa.spec.min_replicas, Some(38));
    }

    #[test]
    fn the_autoscaler_spans_the_capacity_model_on_cpu() {
        let f = us_east_1();
        let hpa = horizontal_pod_autoscaler(&f.inputs());
        let spec = hpa.spec;
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(13), 75));
        assert_eq!(spec.scale_target_ref.kind, "Deployment");
        assert_eq!(spec.scale_target_ref.name, "acme-us-east-1-orders");
        assert_eq!(
            spec.scale_target_ref.api_version.as_deref(),
            Some("apps/v1")
        );
        let metric = spec.metrics.unwrap().remove(0).resource.unwrap();
        assert_eq!(metric.name, "cpu");
        assert_eq!(metric.target.type_, "Utilization");
        assert_eq!(
            metric.target.average_utilization,
            Some(TARGET_CPU_UTILIZATION)
        );
    }

    #[test]
    fn the_autoscaler_reaches_max_within_a_minute_of_a_flash_sale() {
        let f = us_east_1();
        let behavior = horizontal_pod_autoscaler(&f.inputs())
            .spec
            .behavior
            .unwrap();
        let up = behavior.scale_up.unwrap();
        assert_eq!(up.stabilization_window_seconds, Some(0));
        assert_eq!(up.select_policy.as_deref(), Some("Max"));
        // Simulate the policies: from 13 to 75 replicas.
        let policies = up.policies.unwrap();
        let (mut replicas, mut seconds) = (13, 0);
        while replicas < 75 {
            let step = policies
                .iter()
                .map(|p| match p.type_.as_str() {
                    "Percent" => replicas * p.value / 100,
                    _ => p.value,
                })
                .max()
                .unwrap();
            replicas = (replicas + step).min(75);
            seconds += 15;
        }
        assert!(seconds <= 60, "took {seconds}s");

        let down = behavior.scale_down.unwrap();
        assert_eq!(down.stabilization_window_seconds, Some(300));
        assert!(
            down.policies
                .unwrap()
                .iter()
                .all(|p| p.type_ == "Percent" && p.value <= 10)
        );
    }

    #[test]
    fn the_disruption_budget_allows_one_pod_at_a_time() {
        let f = us_east_1();
        let pdb = pod_disruption_budget(&f.inputs()).unwrap();
        let spec = pdb.spec.unwrap();
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(spec.min_available, None);
        assert_eq!(
            spec.unhealthy_pod_eviction_policy.as_deref(),
            Some("AlwaysAllow")
        );
    }

    #[test]
    fn a_single_replica_workload_has_no_disruption_budget() {
        let mut f = us_east_1();
        f.region.spec.orders.min_replicas = Some(1);
        assert!(desired_children(&f.inputs()).pdb.is_none());
        // Unless it is absorbing a lost region with more replicas.
        let inputs = WorkloadInputs {
            absorbing: true,
            ..f.inputs()
        };
        assert!(desired_children(&inputs).pdb.is_some());
    }

    #[test]
    fn the_selector_is_stable_across_shop_and_spec_changes() {
        let f = us_east_1();
        let mut other = us_east_1();
        other.region.spec.orders.image = "registry.example.com/acme/orders:2.0.0".into();
        other.region.spec.orders.peak_orders_per_second = 40_000;
        assert_eq!(
            deployment(&f.inputs()).spec.selector,
            deployment(&other.inputs()).spec.selector
        );
    }

    #[test]
    fn a_spec_change_changes_the_applied_hash_but_a_scale_does_not() {
        let hash = |d: &Deployment| {
            d.metadata.annotations.as_ref().unwrap()[APPLIED_HASH_ANNOTATION].clone()
        };
        let f = us_east_1();
        let base = deployment(&f.inputs());
        let scaled = deployment(&WorkloadInputs {
            observed_replicas: Some(50),
            ..f.inputs()
        });
        assert_eq!(hash(&base), hash(&scaled));
        let mut changed = us_east_1();
        changed.region.spec.orders.image = "registry.example.com/acme/orders:2.0.0".into();
        assert_ne!(hash(&base), hash(&deployment(&changed.inputs())));
    }
}
