//! Merge patch, JSON patch (with `test`) and strategic merge patch.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{api_error, env, raw, widget};

const JSON_PATCH: &str = "application/json-patch+json";

async fn configmap(api: &Api<ConfigMap>) -> ConfigMap {
    let obj = serde_json::from_value(json!({"metadata": {"name": "a", "finalizers": ["x.dev/one"]}, "data": {"a": "1", "b": "2"}})).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap()
}

#[tokio::test]
async fn merge_patch_sets_and_removes_fields() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    configmap(&api).await;
    let obj = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": null, "c": "3"}})),
        )
        .await
        .unwrap();
    let data = obj.data.unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["b", "c"]);
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn merge_patch_with_stale_resource_version_conflicts() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    configmap(&api).await;
    let err = api_error(
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": "1"}, "data": {"a": "x"}})),
        )
        .await,
    );
    assert_eq!(err.code, 409);
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn json_patch_applies_operations_and_honours_test() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    configmap(&api).await;
    let path = format!("/api/v1/namespaces/{}/configmaps/a", env.ns);
    let (code, obj) = raw(
        &env.client,
        "PATCH",
        &path,
        JSON_PATCH,
        Some(json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": "x.dev/one"},
            {"op": "remove", "path": "/metadata/finalizers/0"},
            {"op": "replace", "path": "/data/a", "value": "changed"},
        ])),
    )
    .await;
    assert_eq!(code, 200, "{obj}");
    assert_eq!(obj["data"]["a"], "changed");
    assert!(
        obj["metadata"]["finalizers"]
            .as_array()
            .is_none_or(|f| f.is_empty())
    );

    let (code, status) = raw(
        &env.client,
        "PATCH",
        &path,
        JSON_PATCH,
        Some(json!([
            {"op": "test", "path": "/data/a", "value": "not-this"},
            {"op": "replace", "path": "/data/a", "value": "never"},
        ])),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["kind"], "Status");
}

#[tokio::test]
async fn json_patch_test_for_null_matches_a_missing_field() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "n"}})).unwrap(),
    )
    .await
    .unwrap();
    // The kube-runtime finalizer helper sends exactly this to add its first finalizer.
    let path = format!("/api/v1/namespaces/{}/configmaps/n", env.ns);
    let (code, obj) = raw(
        &env.client,
        "PATCH",
        &path,
        JSON_PATCH,
        Some(json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["x.dev/f"]},
        ])),
    )
    .await;
    assert_eq!(code, 200, "{obj}");
    assert_eq!(obj["metadata"]["finalizers"], json!(["x.dev/f"]));
    api.patch(
        "n",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn strategic_merge_patch_merges_containers_by_name() {
    let env = env().await;
    let api: Api<Deployment> = env.api();
    let d: Deployment = serde_json::from_value(json!({"metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {"metadata": {"labels": {"app": "d"}},
            "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}}))
    .unwrap();
    api.create(&PostParams::default(), &d).await.unwrap();
    let obj = api
        .patch(
            "d",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}})),
        )
        .await
        .unwrap();
    let images: Vec<String> = obj
        .spec
        .template
        .spec
        .unwrap()
        .containers
        .iter()
        .map(|c| c.image.clone().unwrap_or_default())
        .collect();
    assert_eq!(images, ["a:1", "b:2"]);
}

#[tokio::test]
async fn strategic_merge_patch_is_unsupported_for_custom_resources() {
    let env = env().await;
    let widgets = env.widgets();
    widgets
        .create(
            &PostParams::default(),
            &serde_json::from_value(widget("w", 1, "eu")).unwrap(),
        )
        .await
        .unwrap();
    let err = api_error(
        widgets
            .patch(
                "w",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {"size": 2}})),
            )
            .await,
    );
    assert_eq!(err.code, 415);
}
