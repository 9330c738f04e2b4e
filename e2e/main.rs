//! End-to-end tests against a real cluster: whatever KUBECONFIG names (kind,
//! a dev cluster). Without one each test prints `SKIPPED` and returns; it
//! never pretends to have checked anything.
//!
//! Run: `KUBECONFIG=~/.kube/config cargo test --test e2e -- --test-threads 1`

#[path = "../tests/common/mod.rs"]
mod common;

#[tokio::test]
async fn samples_apply_and_invalid_samples_are_rejected_or_stalled_on_a_real_cluster() {
    let Some(h) = common::Harness::real_cluster().await else {
        return;
    };
    common::check_samples(&h).await;
    h.stop().await;
}

#[tokio::test]
async fn the_operator_server_side_applies_all_five_children_on_a_real_cluster() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use k8s_openapi::api::core::v1::{ConfigMap, Service};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use kube::Api;

    let Some(h) = common::Harness::real_cluster().await else {
        return;
    };
    h.create_sample("samples/acme-us-east-1.yaml").await;
    h.wait_for("acme-us-east-1", "a status with orders", |r| {
        r.status.as_ref().is_some_and(|s| s.orders.is_some())
    })
    .await;
    let (c, ns) = (h.client.clone(), h.namespace.clone());
    // The sample's image does not exist, so the pods never start; what is
    // checked is that a real API server accepts every object we build.
    Api::<Deployment>::namespaced(c.clone(), &ns)
        .get("acme-us-east-1-orders")
        .await
        .unwrap();
    Api::<Service>::namespaced(c.clone(), &ns)
        .get("acme-us-east-1-orders")
        .await
        .unwrap();
    Api::<ConfigMap>::namespaced(c.clone(), &ns)
        .get("acme-us-east-1-topology")
        .await
        .unwrap();
    Api::<HorizontalPodAutoscaler>::namespaced(c.clone(), &ns)
        .get("acme-us-east-1-orders")
        .await
        .unwrap();
    Api::<PodDisruptionBudget>::namespaced(c.clone(), &ns)
        .get("acme-us-east-1-orders")
        .await
        .unwrap();
    h.stop().await;
}
