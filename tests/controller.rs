//! The real kube-runtime controller, through the real kube-rs client, against
//! the in-process Kubernetes API server.

mod common;

use std::time::Duration;

use common::{Harness, condition};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use shopfleet::api::ShopRegion;
use shopfleet::api::conditions::types;
use shopfleet::controller::FINALIZER;

#[tokio::test]
async fn a_valid_shopregion_gets_the_finalizer_and_conditions_for_its_generation() {
    let h = Harness::in_process().await;
    h.create_sample("samples/acme-us-east-1.yaml").await;
    let region = h
        .wait_for("acme-us-east-1", "Ready condition", |r| {
            condition(r, types::READY).is_some()
        })
        .await;
    assert!(region.finalizers().iter().any(|f| f == FINALIZER));
    let status = region.status.as_ref().unwrap();
    assert_eq!(status.observed_generation, region.metadata.generation);
    for type_ in [types::READY, types::RECONCILING, types::STALLED] {
        let c = condition(&region, type_).unwrap_or_else(|| panic!("{type_} missing"));
        assert_eq!(c.observed_generation, region.metadata.generation, "{type_}");
    }
    assert_eq!(condition(&region, types::STALLED).unwrap().status, "False");
    h.stop().await;
}

#[tokio::test]
async fn a_spec_change_is_reported_for_the_new_generation() {
    let h = Harness::in_process().await;
    h.create_sample("samples/acme-us-east-1.yaml").await;
    h.wait_for("acme-us-east-1", "first status", |r| r.status.is_some())
        .await;
    let patch = serde_json::json!({"spec": {"orders": {"headroomPercent": 50}}});
    h.regions()
        .patch(
            "acme-us-east-1",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    let region = h
        .wait_for("acme-us-east-1", "observedGeneration 2", |r| {
            r.status.as_ref().and_then(|s| s.observed_generation) == Some(2)
        })
        .await;
    assert_eq!(region.metadata.generation, Some(2));
    assert_eq!(
        condition(&region, types::READY)
            .unwrap()
            .observed_generation,
        Some(2)
    );
    h.stop().await;
}

#[tokio::test]
async fn an_invalid_spec_stalls_with_the_field_named_an_event_and_no_children() {
    let h = Harness::in_process().await;
    h.create_sample("samples/invalid/region-not-in-order.yaml")
        .await;
    let region = h
        .wait_for("invalid-region-not-in-order", "Stalled=True", |r| {
            condition(r, types::STALLED).is_some_and(|c| c.status == "True")
        })
        .await;
    let stalled = condition(&region, types::STALLED).unwrap();
    assert_eq!(stalled.reason, "RegionNotInFailoverOrder");
    assert!(
        stalled.message.contains("spec.failover.order"),
        "{}",
        stalled.message
    );
    assert_eq!(condition(&region, types::READY).unwrap().status, "False");

    let events: Api<K8sEvent> = Api::namespaced(h.client.clone(), &h.namespace);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = events.list(&ListParams::default()).await.unwrap();
        if list.items.iter().any(|e| {
            e.reason.as_deref() == Some("RegionNotInFailoverOrder")
                && e.type_.as_deref() == Some("Warning")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref())
                    == Some("invalid-region-not-in-order")
        }) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Stalled event: {:#?}",
            list.items
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.settle().await;
    let log = h.server.as_ref().unwrap().requests();
    for resource in [
        "deployments",
        "services",
        "configmaps",
        "horizontalpodautoscalers",
        "poddisruptionbudgets",
    ] {
        let writes = log.count("create", resource)
            + log.count("patch", resource)
            + log.count("update", resource);
        assert_eq!(writes, 0, "{resource} was written for an invalid spec");
    }
    h.stop().await;
}

#[tokio::test]
async fn a_converged_shopregion_is_reconciled_without_any_write() {
    let h = Harness::in_process().await;
    h.create_sample("samples/acme-us-east-1.yaml").await;
    h.wait_for("acme-us-east-1", "Ready", |r| {
        condition(r, types::READY).is_some()
    })
    .await;
    h.settle().await;
    let writes_before = h.writes();
    // Another party touches the object: the controller reconciles it again,
    // and that reconcile of a converged ShopRegion must not write.
    let other: Api<ShopRegion> = Api::namespaced(h.server.as_ref().unwrap().client(), &h.namespace);
    let patch = serde_json::json!({"metadata": {"annotations": {"example.com/touched": "yes"}}});
    let reconciles_before = h.metrics.reconciles_total();
    other
        .patch(
            "acme-us-east-1",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while h.metrics.reconciles_total() == reconciles_before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the touch did not trigger a reconcile"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.settle().await;
    assert_eq!(
        h.writes(),
        writes_before,
        "a converged ShopRegion was written to"
    );
    h.stop().await;
}

#[tokio::test]
async fn deleting_a_shopregion_removes_the_finalizer_and_the_object() {
    let h = Harness::in_process().await;
    h.create_sample("samples/acme-us-east-1.yaml").await;
    h.wait_for("acme-us-east-1", "finalizer", |r| {
        r.finalizers().iter().any(|f| f == FINALIZER)
    })
    .await;
    h.regions()
        .delete("acme-us-east-1", &Default::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while h
        .regions()
        .get_opt("acme-us-east-1")
        .await
        .unwrap()
        .is_some()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ShopRegion was never deleted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.stop().await;
}

#[tokio::test]
async fn a_child_kind_the_operator_may_not_list_is_reported_as_a_permission_event_and_nothing_is_applied()
 {
    let h = Harness::in_process_forbidden(
        &[("list", "horizontalpodautoscalers")],
        Duration::from_secs(1),
    )
    .await;
    h.create_sample("samples/acme-us-east-1.yaml").await;
    let events: Api<K8sEvent> = Api::namespaced(h.client.clone(), &h.namespace);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let note = loop {
        let list = events.list(&ListParams::default()).await.unwrap();
        if let Some(event) = list.items.iter().find(|e| {
            e.reason.as_deref() == Some("PermissionDenied")
                && e.type_.as_deref() == Some("Warning")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("acme-us-east-1")
        }) {
            break event.note.clone().unwrap_or_default();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no PermissionDenied event; events: {:?}",
            list.items.iter().map(|e| &e.reason).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        note.contains("cannot list resource \"horizontalpodautoscalers\""),
        "the event names the missing permission: {note}"
    );
    let server = h.server.as_ref().unwrap();
    assert!(
        server
            .get::<k8s_openapi::api::apps::v1::Deployment>(
                Some(&h.namespace),
                "acme-us-east-1-orders"
            )
            .is_none(),
        "no child is applied from caches that may be incomplete"
    );
    assert_eq!(
        server.requests().count("patch", "deployments"),
        0,
        "{}",
        server.requests()
    );
    h.stop().await;
}
