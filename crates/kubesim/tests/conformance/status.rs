//! The /status subresource, metadata.generation and resourceVersion rules.

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{Widget, env, widget};

async fn create_widget(env: &crate::support::Env) -> Widget {
    let api: Api<Widget> = env.api();
    api.create(
        &PostParams::default(),
        &serde_json::from_value(widget("w", 1, "eu")).unwrap(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn generation_starts_at_one_and_bumps_only_on_spec_changes() {
    let env = env().await;
    let api: Api<Widget> = env.api();
    let w = create_widget(&env).await;
    assert_eq!(w.metadata.generation, Some(1));
    let w = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        w.metadata.generation,
        Some(1),
        "metadata changes do not bump generation"
    );
    let w = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        w.metadata.generation,
        Some(1),
        "status changes do not bump generation"
    );
    let w = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(2));
}

#[tokio::test]
async fn writes_to_the_main_resource_ignore_status() {
    let env = env().await;
    let api: Api<Widget> = env.api();
    let mut obj: Widget = serde_json::from_value(widget("w", 1, "eu")).unwrap();
    obj.status = Some(crate::support::WidgetStatus {
        phase: Some("FromCreate".into()),
        observed_generation: None,
    });
    let w = api.create(&PostParams::default(), &obj).await.unwrap();
    assert!(
        w.status.as_ref().and_then(|s| s.phase.clone()).is_none(),
        "status is dropped on create"
    );
    let w = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Sneaky"}})),
        )
        .await
        .unwrap();
    assert!(w.status.and_then(|s| s.phase).is_none());
}

#[tokio::test]
async fn writes_to_status_ignore_everything_but_status() {
    let env = env().await;
    let api: Api<Widget> = env.api();
    create_widget(&env).await;
    let w = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}, "spec": {"size": 5}, "status": {"phase": "Ready"}})),
        )
        .await
        .unwrap();
    assert_eq!(w.status.as_ref().unwrap().phase.as_deref(), Some("Ready"));
    assert_eq!(w.spec.size, 1);
    assert!(w.labels().get("x").is_none());
}

#[tokio::test]
async fn status_can_be_applied_with_its_own_field_manager() {
    let env = env().await;
    let api: Api<Widget> = env.api();
    create_widget(&env).await;
    let w = api
        .patch_status(
            "w",
            &PatchParams::apply("status-writer"),
            &Patch::Apply(json!({"apiVersion": "conformance.kubesim.dev/v1", "kind": "Widget", "metadata": {"name": "w"},
                "status": {"phase": "Ready", "observedGeneration": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(w.status.unwrap().observed_generation, Some(1));
    let entry = w
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .find(|m| m.manager.as_deref() == Some("status-writer"))
        .unwrap();
    assert_eq!(entry.subresource.as_deref(), Some("status"));
    assert_eq!(entry.operation.as_deref(), Some("Apply"));
}

#[tokio::test]
async fn every_write_gets_a_new_increasing_resource_version() {
    let env = env().await;
    let api: Api<Widget> = env.api();
    let w = create_widget(&env).await;
    let rv1: u64 = w.resource_version().unwrap().parse().unwrap();
    let w = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 3}})),
        )
        .await
        .unwrap();
    let rv2: u64 = w.resource_version().unwrap().parse().unwrap();
    assert!(rv2 > rv1);
}

#[tokio::test]
async fn noop_patch_and_update_do_not_bump_resource_version() {
    let env = env().await;
    let api: Api<Widget> = env.api();
    let w = create_widget(&env).await;
    let same = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(same.resource_version(), w.resource_version());
    let replaced = api
        .replace("w", &PostParams::default(), &same)
        .await
        .unwrap();
    assert_eq!(replaced.resource_version(), w.resource_version());
}
