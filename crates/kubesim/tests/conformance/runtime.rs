//! kube-runtime and friends: Controller, events Recorder, Lease-based leader
//! election, request counting and the simulated deployment controller.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use kubesim::RolloutPolicy;
use serde_json::json;

use crate::support::{Widget, env, eventually, widget};

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

#[tokio::test]
async fn controller_reconciles_owned_objects_with_server_side_apply() {
    let env = env().await;
    let widgets: Api<Widget> = env.api();
    let cms: Api<ConfigMap> = env.api();
    let ctx = Arc::new(cms.clone());
    let controller = Controller::new(widgets.clone(), watcher::Config::default())
        .owns(cms.clone(), watcher::Config::default())
        .run(
            |w: Arc<Widget>, cms: Arc<Api<ConfigMap>>| async move {
                let owner = w.controller_owner_ref(&()).expect("owner ref");
                let desired = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": w.name_any(), "ownerReferences": [owner]},
                    "data": {"size": w.spec.size.to_string()}});
                cms.patch(
                    &w.name_any(),
                    &PatchParams::apply("widget-controller").force(),
                    &Patch::Apply(desired),
                )
                .await
                .map_err(|_| Never)?;
                Ok(Action::await_change())
            },
            |_, _: &Never, _| Action::requeue(Duration::from_secs(1)),
            ctx,
        )
        .for_each(|_| async {});
    let task = tokio::spawn(controller);
    widgets
        .create(
            &PostParams::default(),
            &serde_json::from_value(widget("w", 2, "eu")).unwrap(),
        )
        .await
        .unwrap();
    eventually("configmap created", || async {
        cms.get_opt("w").await.unwrap().is_some_and(|c| {
            c.data.unwrap_or_default().get("size").map(String::as_str) == Some("2")
        })
    })
    .await;
    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 3}})),
        )
        .await
        .unwrap();
    eventually("configmap updated", || async {
        cms.get_opt("w").await.unwrap().is_some_and(|c| {
            c.data.unwrap_or_default().get("size").map(String::as_str) == Some("3")
        })
    })
    .await;
    if let Some(sim) = env.sim("request counts are simulator-only") {
        // Steady state: the controller's re-applies are no-ops, so nothing is written.
        let before = sim.requests();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            sim.requests().writes_since(&before),
            0,
            "{}",
            sim.requests()
        );
    }
    widgets.delete("w", &Default::default()).await.unwrap();
    eventually("owned configmap garbage collected", || async {
        cms.get_opt("w").await.unwrap().is_none()
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn events_recorder_publishes_an_event() {
    let env = env().await;
    let cms: Api<ConfigMap> = env.api();
    let cm = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "subject"}})).unwrap(),
        )
        .await
        .unwrap();
    let recorder = Recorder::new(
        env.client.clone(),
        Reporter {
            controller: "conformance".into(),
            instance: None,
        },
    );
    let event = Event {
        type_: EventType::Normal,
        reason: "Tested".into(),
        note: Some("hello from the conformance suite".into()),
        action: "Test".into(),
        secondary: None,
    };
    recorder.publish(&event, &cm.object_ref(&())).await.unwrap();
    recorder.publish(&event, &cm.object_ref(&())).await.unwrap();
    let events: Api<K8sEvent> = env.api();
    let list = events.list(&ListParams::default()).await.unwrap();
    let ev = list
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("Tested"))
        .expect("event stored");
    assert_eq!(
        ev.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("subject")
    );
    assert_eq!(ev.note.as_deref(), Some("hello from the conformance suite"));
    assert!(ev.series.is_some(), "the second publish patches the series");
}

#[tokio::test]
async fn lease_is_acquired_and_renewed_like_kube_lease_manager_does() {
    let env = env().await;
    let manager = kube_lease_manager::LeaseManagerBuilder::new(env.client.clone(), "leader")
        .with_namespace(&env.ns)
        .with_identity("me")
        .with_duration(5)
        .with_grace(2)
        .build()
        .await
        .unwrap();
    let leader = tokio::time::timeout(Duration::from_secs(10), manager.changed())
        .await
        .unwrap()
        .unwrap();
    assert!(leader);
    let leases: Api<Lease> = env.api();
    let lease = leases.get("leader").await.unwrap();
    let spec = lease.spec.clone().unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("me"));
    let first_renew = spec.renew_time.unwrap();

    // A second candidate cannot take a held lease: its apply conflicts.
    let other = kube_lease_manager::LeaseManagerBuilder::new(env.client.clone(), "leader")
        .with_namespace(&env.ns)
        .with_identity("other")
        .with_duration(5)
        .with_grace(2)
        .build()
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), other.changed())
            .await
            .is_err(),
        "other must keep waiting"
    );

    // Renewal: keep `changed()` running past the grace period.
    let _ = tokio::time::timeout(Duration::from_millis(3500), manager.changed()).await;
    let renewed = leases.get("leader").await.unwrap().spec.unwrap();
    assert_eq!(renewed.holder_identity.as_deref(), Some("me"));
    assert!(
        renewed.renew_time.unwrap().0 > first_renew.0,
        "lease renewed"
    );
    manager.release().await.unwrap();
    let released = leases.get("leader").await.unwrap().spec.unwrap();
    assert!(released.holder_identity.is_none());
}

#[tokio::test]
async fn requests_are_counted_by_verb_and_resource() {
    let env = env().await;
    let Some(sim) = env.sim("request counts are simulator-only") else {
        return;
    };
    sim.reset_requests();
    let cms: Api<ConfigMap> = env.api();
    let widgets: Api<Widget> = env.api();
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "a"}})).unwrap(),
    )
    .await
    .unwrap();
    cms.get("a").await.unwrap();
    cms.list(&ListParams::default()).await.unwrap();
    cms.patch(
        "a",
        &PatchParams::apply("m"),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}})),
    )
    .await
    .unwrap();
    widgets
        .create(
            &PostParams::default(),
            &serde_json::from_value(widget("w", 1, "eu")).unwrap(),
        )
        .await
        .unwrap();
    widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "x"}})),
        )
        .await
        .unwrap();
    cms.delete("a", &Default::default()).await.unwrap();
    let log = sim.requests();
    assert_eq!(log.count("create", "configmaps"), 1);
    assert_eq!(log.count("get", "configmaps"), 1);
    assert_eq!(log.count("list", "configmaps"), 1);
    assert_eq!(log.count("patch", "configmaps"), 1);
    assert_eq!(log.count("delete", "configmaps"), 1);
    assert_eq!(log.count_subresource("patch", "widgets", Some("status")), 1);
    assert_eq!(log.writes(), 5);
    let snapshot = sim.requests();
    cms.list(&ListParams::default()).await.unwrap();
    assert_eq!(sim.requests().writes_since(&snapshot), 0);
    sim.reset_requests();
    assert_eq!(sim.requests().total(), 0);
}

fn deployment(name: &str, image: &str) -> serde_json::Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": image}]}}}})
}

fn available(d: &Deployment) -> Option<String> {
    d.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_.as_deref() == Some("Available")))
        .and_then(|c| c.status.clone())
}

#[tokio::test]
async fn deployments_roll_out_and_report_status() {
    let env = env().await;
    let api: Api<Deployment> = env.api();
    api.patch(
        "web",
        &PatchParams::apply("t"),
        &Patch::Apply(deployment("web", "nginx:1")),
    )
    .await
    .unwrap();
    eventually("deployment available", || async {
        let d = api.get("web").await.unwrap();
        let s = d.status.clone().unwrap_or_default();
        available(&d).as_deref() == Some("True")
            && s.observed_generation == d.metadata.generation
            && s.available_replicas == Some(2)
    })
    .await;
}

#[tokio::test]
async fn deployment_rollout_policies_manual_and_failing_images() {
    let env = env().await;
    let Some(sim) = env.sim("rollout policies are simulator hooks") else {
        return;
    };
    let api: Api<Deployment> = env.api();
    sim.set_deployment_rollout(RolloutPolicy::Manual);
    api.patch(
        "web",
        &PatchParams::apply("t"),
        &Patch::Apply(deployment("web", "nginx:1")),
    )
    .await
    .unwrap();
    let d = api.get("web").await.unwrap();
    assert_eq!(available(&d).as_deref(), Some("False"));
    let before = sim.requests();
    sim.mark_deployment_available(&env.ns, "web").unwrap();
    assert_eq!(sim.requests(), before, "simulation hooks are not counted");
    assert_eq!(
        available(&api.get("web").await.unwrap()).as_deref(),
        Some("True")
    );

    sim.set_failing_images(["broken:1"]);
    sim.set_deployment_rollout(RolloutPolicy::AfterDelay(Duration::from_millis(50)));
    api.patch(
        "web",
        &PatchParams::apply("t"),
        &Patch::Apply(deployment("web", "broken:1")),
    )
    .await
    .unwrap();
    eventually("rollout failed", || async {
        let d = api.get("web").await.unwrap();
        let conds = d.status.and_then(|s| s.conditions).unwrap_or_default();
        conds.iter().any(|c| {
            c.type_.as_deref() == Some("Progressing")
                && c.status.as_deref() == Some("False")
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
                && c.message.as_deref().is_some_and(|m| m.contains("broken:1"))
        })
    })
    .await;
    let typed: Option<Deployment> = sim.get(Some(&env.ns), "web");
    assert!(typed.is_some());
    assert!(
        sim.get_object("apps/v1", "deployments", Some(&env.ns), "web")
            .is_some()
    );
}
