//! End-to-end: the operator binary built from this checkout, as its own
//! process, under the chart's RBAC with a ServiceAccount token, against the
//! cluster KUBECONFIG names (CI: the real control plane of `../shared/k8s`;
//! kind or EKS work the same). Without a cluster the suite says so once and
//! checks nothing; it never reports a pass it did not run.
//!
//! Run: `KUBECONFIG=/abs/kubeconfig cargo test --test e2e` (see e2e/README.md).

#[path = "../tests/common/mod.rs"]
mod common;
mod operator;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use serde_json::json;
use shopfleet::api::ShopRegion;
use shopfleet::api::conditions::types;

use common::{Expectation, condition, expectation, invalid_samples};
use operator::{Cluster, Rbac, Shop};

const ACME: [&str; 3] = ["acme-us-east-1", "acme-eu-west-1", "acme-ap-northeast-1"];

fn is_true(region: &ShopRegion, type_: &str) -> bool {
    condition(region, type_).is_some_and(|c| c.status == "True")
}

async fn all_ready(shop: &Shop) {
    for name in ACME {
        shop.wait_for(name, "Ready=True", Duration::from_secs(240), |r| {
            is_true(r, types::READY)
        })
        .await;
    }
}

#[tokio::test]
async fn the_operator_binary_under_the_charts_rbac_brings_the_fleet_ready_then_writes_nothing() {
    let Some(cluster) = Cluster::connect().await else {
        return;
    };
    cluster.crd_is_established_and_explainable();
    let mut shop = cluster.shop("ready", Rbac::AsCharted).await;
    shop.start_operator(300);
    for name in ACME {
        shop.apply_sample(&format!("samples/{name}.yaml"));
    }
    all_ready(&shop).await;

    let regions = shop.regions();
    let children_gvk = [
        "Deployment",
        "Service",
        "ConfigMap",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ];
    for name in ACME {
        let region = regions.get(name).await.unwrap();
        assert!(
            region
                .finalizers()
                .iter()
                .any(|f| f == "shopfleet.io/cleanup"),
            "{name} has the cleanup finalizer"
        );
        let status = region.status.as_ref().unwrap();
        assert_eq!(
            status.observed_generation, region.metadata.generation,
            "{name}"
        );
        let types_seen: BTreeSet<&str> =
            status.conditions.iter().map(|c| c.type_.as_str()).collect();
        for wanted in [
            types::READY,
            types::RECONCILING,
            types::STALLED,
            types::WORKLOAD_READY,
            types::DATABASE_READY,
            types::CACHE_READY,
            types::FAILOVER_READY,
        ] {
            assert!(
                types_seen.contains(wanted),
                "{name} lacks condition {wanted}: {types_seen:?}"
            );
        }
        let uid = region.uid().unwrap();
        let owned = |meta: &kube::api::ObjectMeta| {
            let owner = meta.owner_references.as_ref().is_some_and(|refs| {
                refs.iter()
                    .any(|o| o.uid == uid && o.controller == Some(true))
            });
            let manager = meta.managed_fields.as_ref().is_some_and(|fields| {
                fields
                    .iter()
                    .any(|f| f.manager.as_deref() == Some("shopfleet"))
            });
            owner && manager
        };
        let c = shop.client();
        let ns = shop.namespace();
        let orders = format!("{name}-orders");
        let topology = format!("{name}-topology");
        let metas = [
            Api::<Deployment>::namespaced(c.clone(), ns)
                .get(&orders)
                .await
                .unwrap()
                .metadata,
            Api::<Service>::namespaced(c.clone(), ns)
                .get(&orders)
                .await
                .unwrap()
                .metadata,
            Api::<ConfigMap>::namespaced(c.clone(), ns)
                .get(&topology)
                .await
                .unwrap()
                .metadata,
            Api::<HorizontalPodAutoscaler>::namespaced(c.clone(), ns)
                .get(&orders)
                .await
                .unwrap()
                .metadata,
            Api::<PodDisruptionBudget>::namespaced(c.clone(), ns)
                .get(&orders)
                .await
                .unwrap()
                .metadata,
        ];
        for (kind, meta) in children_gvk.iter().zip(&metas) {
            assert!(
                owned(meta),
                "{name}'s {kind} is owned by it and applied by field manager shopfleet"
            );
        }
        // The real scheduler spread the Pods over the three zones and the
        // kubelet reported them Ready: that is what WorkloadReady read.
        let pods = Api::<Pod>::namespaced(c.clone(), ns)
            .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={name}")))
            .await
            .unwrap();
        let nodes: BTreeSet<String> = pods
            .items
            .iter()
            .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
            .collect();
        assert!(
            nodes.len() >= 3.min(pods.items.len()),
            "{name}'s pods spread over the zones: {nodes:?}"
        );
    }
    let table = shop.kubectl(&["get", "sr", "-o", "wide"]);
    for column in ["REGION", "ROLE", "WRITER", "READY", "LAG", "AGE"] {
        assert!(
            table.lines().next().unwrap_or_default().contains(column),
            "kubectl get sr shows {column}:\n{table}"
        );
    }
    for name in ACME {
        let line = table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in:\n{table}"));
        assert!(
            line.contains("True") && line.contains("us-east-1"),
            "{line}"
        );
    }

    // Server-side apply ownership: a field another manager sets on a child
    // survives the operator's reconciles.
    let deployments = Api::<Deployment>::namespaced(shop.client(), shop.namespace());
    deployments
        .patch(
            "acme-eu-west-1-orders",
            &PatchParams::apply("someone-else"),
            &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "acme-eu-west-1-orders", "annotations": {"example.com/owner": "team-orders"}}
            })),
        )
        .await
        .unwrap();

    // Converged: no reconcile write over a forced resync (a metadata change
    // the operator must look at) and a minute of simulated cloud time.
    // Measured near real time (5x), where a real cluster's own pace (its
    // timestamps, its watch events) is not hidden by the simulation's.
    shop.operator().sim_post("/sim/speed/60");
    shop.settle().await;
    let before = shop.operator().reconcile_writes();
    shop.touch("acme-eu-west-1").await;
    tokio::time::sleep(Duration::from_secs(20)).await; // 100 s of cloud time: a lag read included
    let after = shop.operator().reconcile_writes();
    assert_eq!(
        after,
        before,
        "a converged fleet makes no Kubernetes write (leader Lease apart); log: {}",
        shop.operator().log_path().display()
    );
    let annotations = deployments
        .get("acme-eu-west-1-orders")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap_or_default();
    assert_eq!(
        annotations.get("example.com/owner").map(String::as_str),
        Some("team-orders")
    );

    // A Git change that shrinks a region below two replicas: the operator
    // deletes the PDB it no longer wants (a budget over one pod would block
    // every drain).
    let pdbs = Api::<PodDisruptionBudget>::namespaced(shop.client(), shop.namespace());
    assert!(
        pdbs.get_opt("acme-ap-northeast-1-orders")
            .await
            .unwrap()
            .is_some()
    );
    regions
        .patch(
            "acme-ap-northeast-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"orders": {"minReplicas": 1, "maxReplicas": 3}}})),
        )
        .await
        .unwrap();
    operator::eventually(
        "the unwanted PDB is deleted",
        Duration::from_secs(60),
        async || {
            pdbs.get_opt("acme-ap-northeast-1-orders")
                .await
                .unwrap()
                .is_none()
        },
    )
    .await;

    // Deletion with Retain: the finalizer goes, the real garbage collector
    // removes the children, the simulated cloud keeps the resources.
    regions
        .delete("acme-ap-northeast-1", &DeleteParams::default())
        .await
        .unwrap();
    shop.wait_gone("acme-ap-northeast-1", Duration::from_secs(60))
        .await;
    let configmaps = Api::<ConfigMap>::namespaced(shop.client(), shop.namespace());
    operator::eventually(
        "the garbage collector removes the children",
        Duration::from_secs(60),
        async || {
            configmaps
                .get_opt("acme-ap-northeast-1-topology")
                .await
                .unwrap()
                .is_none()
        },
    )
    .await;
    let state = shop.operator().sim_state();
    let clusters = state["clusters"].as_array().unwrap();
    assert!(
        clusters.iter().any(|c| c["region"] == "ap-northeast-1"),
        "deletionPolicy Retain keeps the cluster: {state}"
    );
    shop.finish().await;
}

#[tokio::test]
async fn a_pci_shop_reads_its_redis_auth_token_from_its_secret_and_comes_up() {
    let Some(cluster) = Cluster::connect().await else {
        return;
    };
    let mut shop = cluster.shop("pci", Rbac::AsCharted).await;
    shop.start_operator(300);
    let secrets =
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(shop.client(), shop.namespace());
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "eurocard-redis-auth"},
                "stringData": {"token": "e2e-redis-auth-token-0123456789"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let names = ["eurocard-eu-west-1", "eurocard-eu-central-1"];
    for name in names {
        shop.apply_sample(&format!(
            "samples/variants/{}.yaml",
            name.replace("eurocard-", "eurocard-pci-eu-")
        ));
    }
    for name in names {
        let region = shop
            .wait_for(name, "Ready=True", Duration::from_secs(240), |r| {
                is_true(r, types::READY)
            })
            .await;
        assert!(
            is_true(&region, types::CACHE_READY),
            "{name}: the cache came up with AUTH"
        );
    }
    shop.finish().await;
}

#[tokio::test]
async fn invalid_samples_are_rejected_by_the_api_server_or_stalled_with_their_reason() {
    let Some(cluster) = Cluster::connect().await else {
        return;
    };
    let mut shop = cluster.shop("invalid", Rbac::AsCharted).await;
    shop.start_operator(300);
    let raw: Api<DynamicObject> = Api::namespaced_with(
        shop.client(),
        shop.namespace(),
        &ApiResource::erase::<ShopRegion>(&()),
    );
    for path in invalid_samples() {
        let text =
            std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let object: DynamicObject = serde_saphyr::from_str(&text).unwrap();
        let name = object.name_any();
        match (
            expectation(&path),
            raw.create(&PostParams::default(), &object).await,
        ) {
            (Expectation::Rejected { field }, Err(kube::Error::Api(status))) => {
                assert_eq!(status.code, 422, "{path}: {status:?}");
                assert!(
                    status.message.contains(&field),
                    "{path}: names {field}: {}",
                    status.message
                );
            }
            (Expectation::Rejected { .. }, other) => {
                panic!("{path} should be rejected, got {other:?}")
            }
            (Expectation::Stalled { reason }, Ok(_)) => {
                let stalled = shop
                    .wait_for(&name, "Stalled=True", Duration::from_secs(60), |r| {
                        is_true(r, types::STALLED)
                    })
                    .await;
                assert_eq!(
                    condition(&stalled, types::STALLED).unwrap().reason,
                    reason,
                    "{path}"
                );
                assert!(!is_true(&stalled, types::READY));
            }
            (Expectation::Stalled { .. }, Err(e)) => {
                panic!("{path} should pass the API server and stall: {e}")
            }
        }
    }
    shop.finish().await;
}

#[tokio::test]
async fn a_lost_writer_region_fails_over_and_the_survivors_absorb_its_traffic() {
    let Some(cluster) = Cluster::connect().await else {
        return;
    };
    let mut shop = cluster.shop("outage", Rbac::AsCharted).await;
    shop.start_operator(300);
    for name in ACME {
        shop.apply_sample(&format!("samples/{name}.yaml"));
    }
    all_ready(&shop).await;
    // Watch the failover at a pace where the operator's own latency is
    // small against cloud time.
    shop.operator().sim_post("/sim/speed/20");
    shop.operator().sim_post("/sim/outage/us-east-1");
    let promoted = shop
        .wait_for(
            "acme-eu-west-1",
            "the writer moved to eu-west-1",
            Duration::from_secs(120),
            |r| {
                r.status.as_ref().is_some_and(|s| {
                    s.writer_region.as_deref() == Some("eu-west-1")
                        && s.last_failover
                            .as_ref()
                            .is_some_and(|f| f.completed_at.is_some())
                })
            },
        )
        .await;
    let record = promoted.status.unwrap().last_failover.unwrap();
    assert_eq!(
        (record.from.as_str(), record.to.as_str()),
        ("us-east-1", "eu-west-1")
    );
    for reason in ["FailoverStarted", "FailoverCompleted"] {
        operator::eventually(
            &format!("an Event {reason}"),
            Duration::from_secs(30),
            async || {
                shop.events()
                    .await
                    .iter()
                    .any(|e| e.reason.as_deref() == Some(reason))
            },
        )
        .await;
    }
    // The survivor holds extra capacity for the lost region, and its HPA
    // carries the absorbing minimum.
    let region = shop
        .wait_for(
            "acme-ap-northeast-1",
            "absorbing",
            Duration::from_secs(60),
            |r| {
                r.status
                    .as_ref()
                    .and_then(|s| s.orders.as_ref())
                    .is_some_and(|o| o.absorbing)
            },
        )
        .await;
    let orders = region.status.unwrap().orders.unwrap();
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(shop.client(), shop.namespace());
    operator::eventually(
        "the HPA minimum follows the absorbing minimum",
        Duration::from_secs(30),
        async || {
            hpas.get("acme-ap-northeast-1-orders")
                .await
                .unwrap()
                .spec
                .min_replicas
                == Some(orders.min_replicas)
        },
    )
    .await;
    let metrics = shop.operator().metrics();
    assert!(
        metrics.contains("shopfleet_failovers_started_total{namespace=")
            && metrics.contains("kind=\"failover\"} 1"),
        "{metrics}"
    );
    shop.finish().await;
}

#[tokio::test]
async fn a_missing_status_permission_is_reported_with_the_verb_and_resource() {
    let Some(cluster) = Cluster::connect().await else {
        return;
    };
    let mut shop = cluster
        .shop(
            "forbidden",
            Rbac::Without {
                resource: "shopregions/status",
                verb: "patch",
            },
        )
        .await;
    shop.start_operator(300);
    shop.apply_sample("samples/acme-us-east-1.yaml");
    let wanted = "cannot patch resource \"shopregions/status\"";
    operator::eventually(
        "the operator logs the missing permission",
        Duration::from_secs(60),
        async || shop.operator().log().contains(wanted),
    )
    .await;
    let metrics = shop.operator().metrics();
    assert!(
        metrics.contains("shopfleet_reconcile_errors_total{category=\"forbidden\"}"),
        "{metrics}"
    );
    let events = shop.events().await;
    let denied = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("PermissionDenied"))
        .unwrap_or_else(|| {
            panic!(
                "a PermissionDenied Event among {:?}",
                events.iter().map(|e| &e.reason).collect::<Vec<_>>()
            )
        });
    assert!(
        denied.note.as_deref().unwrap_or_default().contains(wanted),
        "{denied:?}"
    );
    shop.finish().await;
}
