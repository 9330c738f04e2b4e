//! The order workload as a user sees it: children exist, stay as shopfleet
//! wants them, and a converged ShopRegion costs no write.

mod common;

use std::time::Duration;

use common::{Harness, condition};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use shopfleet::api::ShopRegion;
use shopfleet::api::conditions::types;

const NAME: &str = "acme-us-east-1";

async fn ready_region(h: &Harness) -> ShopRegion {
    h.create_sample("samples/acme-us-east-1.yaml").await;
    h.wait_for(NAME, "WorkloadReady=True", |r| {
        condition(r, types::WORKLOAD_READY).is_some_and(|c| c.status == "True")
    })
    .await
}

fn owned_by(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    owner: &ShopRegion,
) -> bool {
    meta.owner_references.iter().flatten().any(|o| {
        Some(&o.uid) == owner.meta().uid.as_ref()
            && o.controller == Some(true)
            && o.kind == "ShopRegion"
    })
}

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_shopregion_gets_all_five_children_owned_by_it_and_becomes_ready() {
    let h = Harness::in_process().await;
    let region = ready_region(&h).await;
    let ns = &h.namespace;
    let c = h.client.clone();
    let d = Api::<Deployment>::namespaced(c.clone(), ns)
        .get("acme-us-east-1-orders")
        .await
        .unwrap();
    let s = Api::<Service>::namespaced(c.clone(), ns)
        .get("acme-us-east-1-orders")
        .await
        .unwrap();
    let m = Api::<ConfigMap>::namespaced(c.clone(), ns)
        .get("acme-us-east-1-topology")
        .await
        .unwrap();
    let a = Api::<HorizontalPodAutoscaler>::namespaced(c.clone(), ns)
        .get("acme-us-east-1-orders")
        .await
        .unwrap();
    let p = Api::<PodDisruptionBudget>::namespaced(c.clone(), ns)
        .get("acme-us-east-1-orders")
        .await
        .unwrap();
    for (kind, meta) in [
        ("Deployment", &d.metadata),
        ("Service", &s.metadata),
        ("ConfigMap", &m.metadata),
        ("HPA", &a.metadata),
        ("PDB", &p.metadata),
    ] {
        assert!(
            owned_by(meta, &region),
            "{kind} is not owned by the ShopRegion"
        );
    }
    let data = m.data.unwrap();
    assert_eq!(data["ROLE"], "primary");
    assert_eq!(data["WRITER_REGION"], "us-east-1");
    let hpa = a.spec;
    let orders = region.status.as_ref().unwrap().orders.clone().unwrap();
    assert_eq!(hpa.min_replicas, Some(orders.min_replicas));
    assert_eq!(hpa.max_replicas, orders.max_replicas);
    assert!(orders.ready_replicas >= orders.min_replicas);
    assert_eq!(condition(&region, types::READY).unwrap().status, "True");
    h.stop().await;
}

#[tokio::test]
async fn a_hand_edit_of_the_deployment_replicas_is_restored() {
    let h = Harness::in_process().await;
    let region = ready_region(&h).await;
    let min = region.status.unwrap().orders.unwrap().min_replicas;
    let deployments: Api<Deployment> =
        Api::namespaced(h.server.as_ref().unwrap().client(), &h.namespace);
    let edit = serde_json::json!({"spec": {"replicas": 0}});
    deployments
        .patch(
            "acme-us-east-1-orders",
            &PatchParams::default(),
            &Patch::Merge(&edit),
        )
        .await
        .unwrap();
    eventually("replicas restored", async || {
        let d = deployments.get("acme-us-east-1-orders").await.unwrap();
        (d.spec.replicas == Some(min)).then_some(())
    })
    .await;
    h.stop().await;
}

#[tokio::test]
async fn a_deleted_service_is_recreated() {
    let h = Harness::in_process().await;
    ready_region(&h).await;
    let services: Api<Service> = Api::namespaced(h.server.as_ref().unwrap().client(), &h.namespace);
    let old_uid = services.get("acme-us-east-1-orders").await.unwrap().uid();
    services
        .delete("acme-us-east-1-orders", &DeleteParams::default())
        .await
        .unwrap();
    eventually("service recreated", async || {
        let s = services.get_opt("acme-us-east-1-orders").await.unwrap()?;
        (s.uid() != old_uid).then_some(())
    })
    .await;
    h.stop().await;
}

#[tokio::test]
async fn a_second_reconcile_of_a_converged_shopregion_writes_nothing() {
    let h = Harness::in_process().await;
    ready_region(&h).await;
    h.settle().await;
    let server = h.server.as_ref().unwrap();
    let before = server.requests();
    let writes_before = h.writes();
    let reconciles_before = h.metrics.reconciles_total();
    // An unrelated annotation change makes the controller reconcile again.
    let other: Api<ShopRegion> = Api::namespaced(server.client(), &h.namespace);
    let touch = serde_json::json!({"metadata": {"annotations": {"example.com/touched": "1"}}});
    other
        .patch(NAME, &PatchParams::default(), &Patch::Merge(&touch))
        .await
        .unwrap();
    eventually("a reconcile", async || {
        (h.metrics.reconciles_total() > reconciles_before).then_some(())
    })
    .await;
    h.settle().await;
    assert_eq!(
        h.writes(),
        writes_before,
        "the operator wrote to a converged ShopRegion's objects"
    );
    // The server agrees: the only write it saw is the test's own touch.
    assert_eq!(server.requests().writes_since(&before), 1);
    h.stop().await;
}
