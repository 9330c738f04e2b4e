//! Server-side apply: field managers, managedFields, removal, conflicts,
//! force, list merge keys and create-on-apply.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::support::{api_error, env, raw};

fn cm_apply(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

fn deployment(name: &str, containers: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": containers}}}})
}

#[tokio::test]
async fn apply_creates_the_object_when_missing() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    let obj = api
        .patch(
            "a",
            &PatchParams::apply("mgr"),
            &Patch::Apply(cm_apply("a", json!({"k": "v"}))),
        )
        .await
        .unwrap();
    assert_eq!(obj.data.unwrap()["k"], "v");
    let mf = obj.metadata.managed_fields.unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("mgr"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    assert_eq!(mf[0].fields_type.as_deref(), Some("FieldsV1"));
    assert_eq!(
        mf[0].fields_v1.as_ref().unwrap().0,
        json!({"f:data": {"f:k": {}}})
    );
}

#[tokio::test]
async fn apply_without_field_manager_is_rejected() {
    let env = env().await;
    let (code, body) = raw(
        &env.client,
        "PATCH",
        &format!("/api/v1/namespaces/{}/configmaps/a", env.ns),
        "application/apply-patch+yaml",
        Some(cm_apply("a", json!({}))),
    )
    .await;
    // The real server answers 422 (PatchOptions is invalid: fieldManager: Required value).
    assert!(code == 400 || code == 422, "code {code}: {body}");
    assert!(
        body["message"].as_str().unwrap().contains("fieldManager"),
        "{body}"
    );
}

/// Applies a YAML body; returns the status code and the JSON answer.
async fn apply_yaml(env: &crate::support::Env, name: &str, yaml: &str) -> (u16, Value) {
    let req = hyper::Request::builder()
        .method("PATCH")
        .uri(format!(
            "/api/v1/namespaces/{}/configmaps/{name}?fieldManager=yaml",
            env.ns
        ))
        .header("content-type", "application/apply-patch+yaml")
        .body(kube::client::Body::from(yaml.as_bytes().to_vec()))
        .unwrap();
    let resp = env.client.send(req).await.expect("send");
    let code = resp.status().as_u16();
    let body = resp.into_body().collect_bytes().await.expect("body");
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn apply_accepts_yaml_bodies() {
    let env = env().await;
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \"y\"\ndata:\n  k: v\n  enabled: \"yes\"\n";
    // An apply that creates the object answers 201, then 200.
    let (code, cm) = apply_yaml(&env, "y", yaml).await;
    assert_eq!(code, 201, "{cm}");
    assert_eq!(cm["data"], json!({"k": "v", "enabled": "yes"}));
    let (code, _) = apply_yaml(&env, "y", yaml).await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn apply_reads_plain_yaml_scalars_as_yaml_1_1() {
    let env = env().await;
    // sigs.k8s.io/yaml (go-yaml v2): unquoted `y` is the boolean true, so the
    // applied name is not a string and the apply fails with a 500.
    let (code, status) = apply_yaml(
        &env,
        "y",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  k: v\n",
    )
    .await;
    assert_eq!(code, 500, "{status}");
    assert_eq!(
        status["message"],
        "failed to create typed patch object (/; /v1, Kind=ConfigMap): .metadata.name: expected string, got &value.valueUnstructured{Value:true}"
    );
    assert!(status.get("reason").is_none(), "{status}");
    // The same for values: YAML 1.1 booleans (case-sensitive forms), octal and
    // `_` separators all give non-strings; `yEs` and a date stay strings.
    let (code, status) = apply_yaml(
        &env,
        "v",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: v\ndata:\n  a: Yes\n  b: 010\n  c: 1_000\n  d: yEs\n  e: 2001-12-14\n",
    )
    .await;
    assert_eq!(code, 500, "{status}");
    // Several errors are listed in Go map order (random on a real server).
    let message = status["message"].as_str().unwrap();
    let (head, listed) = message.split_once("errors:\n  ").expect("several errors");
    assert_eq!(
        head,
        "failed to create typed patch object (/v; /v1, Kind=ConfigMap): "
    );
    let mut listed: Vec<&str> = listed.split("\n  ").collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            ".data.a: expected string, got &value.valueUnstructured{Value:true}",
            ".data.b: expected string, got &value.valueUnstructured{Value:8}",
            ".data.c: expected string, got &value.valueUnstructured{Value:1000}"
        ]
    );
    let (code, cm) = apply_yaml(
        &env,
        "v",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: v\ndata:\n  d: yEs\n  e: 2001-12-14\n",
    )
    .await;
    assert_eq!(code, 201, "{cm}");
    assert_eq!(cm["data"], json!({"d": "yEs", "e": "2001-12-14"}));
}

#[tokio::test]
async fn apply_type_checks_custom_resources_against_their_schema() {
    let env = env().await;
    let widgets = env.widgets();
    let w = |spec: Value| {
        json!({"apiVersion": "conformance.kubesim.dev/v1", "kind": "Widget",
            "metadata": {"name": "w"}, "spec": spec})
    };
    // A wrong type, or a field the schema does not declare, fails the
    // conversion to a typed object: 500, before any validation (422).
    let err = api_error(
        widgets
            .patch(
                "w",
                &PatchParams::apply("a"),
                &Patch::Apply(w(json!({"size": "big", "region": "eu"}))),
            )
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (500, ""));
    assert_eq!(
        err.message,
        "failed to create typed patch object (/w; conformance.kubesim.dev/v1, Kind=Widget): .spec.size: expected numeric (int or float), got string"
    );
    let err = api_error(
        widgets
            .patch(
                "w",
                &PatchParams::apply("a"),
                &Patch::Apply(w(json!({"size": 1, "region": "eu", "bogus": 1}))),
            )
            .await,
    );
    assert_eq!(
        err.message,
        "failed to create typed patch object (/w; conformance.kubesim.dev/v1, Kind=Widget): .spec.bogus: field not declared in schema"
    );
    // Well typed but invalid: the schema validation answers.
    let err = api_error(
        widgets
            .patch(
                "w",
                &PatchParams::apply("a"),
                &Patch::Apply(w(json!({"size": 11, "region": "eu"}))),
            )
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
}

#[tokio::test]
async fn apply_removes_fields_the_manager_stopped_applying() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    let pp = PatchParams::apply("mgr");
    api.patch(
        "a",
        &pp,
        &Patch::Apply(cm_apply("a", json!({"keep": "1", "drop": "2"}))),
    )
    .await
    .unwrap();
    let obj = api
        .patch("a", &pp, &Patch::Apply(cm_apply("a", json!({"keep": "1"}))))
        .await
        .unwrap();
    assert_eq!(obj.data.unwrap().keys().collect::<Vec<_>>(), ["keep"]);
}

#[tokio::test]
async fn apply_keeps_fields_still_owned_by_another_manager() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    api.patch(
        "a",
        &PatchParams::apply("one"),
        &Patch::Apply(cm_apply("a", json!({"shared": "1"}))),
    )
    .await
    .unwrap();
    api.patch(
        "a",
        &PatchParams::apply("two"),
        &Patch::Apply(cm_apply("a", json!({"shared": "1"}))),
    )
    .await
    .unwrap();
    let obj = api
        .patch(
            "a",
            &PatchParams::apply("one"),
            &Patch::Apply(cm_apply("a", json!({}))),
        )
        .await
        .unwrap();
    assert_eq!(obj.data.unwrap()["shared"], "1");
    let managers: Vec<String> = obj
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(managers.contains(&"two".to_string()));
}

#[tokio::test]
async fn apply_conflicts_with_another_managers_field() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    api.patch(
        "a",
        &PatchParams::apply("owner"),
        &Patch::Apply(cm_apply("a", json!({"x": "1"}))),
    )
    .await
    .unwrap();
    let err = api_error(
        api.patch(
            "a",
            &PatchParams::apply("intruder"),
            &Patch::Apply(cm_apply("a", json!({"x": "2"}))),
        )
        .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"owner\": .data.x"
    );
    let cause = &err.details.unwrap().causes[0];
    assert_eq!(
        (cause.reason.as_str(), cause.field.as_str()),
        ("FieldManagerConflict", ".data.x")
    );
}

#[tokio::test]
async fn apply_conflict_names_update_managers_with_their_api_version() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    let obj: ConfigMap = serde_json::from_value(cm_apply("a", json!({"x": "1"}))).unwrap();
    api.create(
        &PostParams {
            field_manager: Some("creator".into()),
            ..Default::default()
        },
        &obj,
    )
    .await
    .unwrap();
    let err = api_error(
        api.patch(
            "a",
            &PatchParams::apply("applier"),
            &Patch::Apply(cm_apply("a", json!({"x": "2"}))),
        )
        .await,
    );
    assert!(
        err.message
            .starts_with("Apply failed with 1 conflict: conflict with \"creator\" using v1"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn apply_with_force_takes_ownership() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    api.patch(
        "a",
        &PatchParams::apply("owner"),
        &Patch::Apply(cm_apply("a", json!({"x": "1"}))),
    )
    .await
    .unwrap();
    let obj = api
        .patch(
            "a",
            &PatchParams::apply("intruder").force(),
            &Patch::Apply(cm_apply("a", json!({"x": "2"}))),
        )
        .await
        .unwrap();
    assert_eq!(obj.data.unwrap()["x"], "2");
    let mf = obj.metadata.managed_fields.unwrap();
    assert_eq!(mf.len(), 1, "the old owner lost its only field");
    assert_eq!(mf[0].manager.as_deref(), Some("intruder"));
}

#[tokio::test]
async fn apply_merges_containers_by_name() {
    let env = env().await;
    let api: Api<Deployment> = env.api();
    api.patch(
        "d",
        &PatchParams::apply("a"),
        &Patch::Apply(deployment("d", json!([{"name": "app", "image": "app:1"}]))),
    )
    .await
    .unwrap();
    // Another manager adds a sidecar: list items are keyed by name, so no conflict.
    let obj = api
        .patch(
            "d",
            &PatchParams::apply("b"),
            &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "side:1"}]}}}})),
        )
        .await
        .unwrap();
    let names: Vec<String> = obj
        .spec
        .template
        .spec
        .unwrap()
        .containers
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(names, ["app", "sidecar"]);
    // The first manager stops applying nothing of b's: b's sidecar survives a's re-apply.
    let obj = api
        .patch(
            "d",
            &PatchParams::apply("a"),
            &Patch::Apply(deployment("d", json!([{"name": "app", "image": "app:2"}]))),
        )
        .await
        .unwrap();
    let containers = obj.spec.template.spec.unwrap().containers;
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0].image.as_deref(), Some("app:2"));
}

#[tokio::test]
async fn apply_uses_crd_list_map_keys() {
    let env = env().await;
    let widgets = env.widgets();
    let w = |ports: Value| {
        json!({"apiVersion": "conformance.kubesim.dev/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"size": 1, "region": "eu", "ports": ports}})
    };
    widgets
        .patch(
            "w",
            &PatchParams::apply("a"),
            &Patch::Apply(w(json!([{"name": "http", "port": 80}]))),
        )
        .await
        .unwrap();
    let obj = widgets
        .patch(
            "w",
            &PatchParams::apply("b"),
            &Patch::Apply(json!({"apiVersion": "conformance.kubesim.dev/v1", "kind": "Widget", "metadata": {"name": "w"},
                "spec": {"ports": [{"name": "metrics", "port": 9090}]}})),
        )
        .await
        .unwrap();
    let ports: Vec<&str> = obj.data["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(ports, ["http", "metrics"]);
}

#[tokio::test]
async fn apply_records_update_operations_of_other_writers() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    api.patch(
        "a",
        &PatchParams::apply("applier"),
        &Patch::Apply(cm_apply("a", json!({"x": "1"}))),
    )
    .await
    .unwrap();
    let obj = api
        .patch(
            "a",
            &PatchParams {
                field_manager: Some("editor".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"data": {"y": "2"}})),
        )
        .await
        .unwrap();
    let mf = obj.metadata.managed_fields.unwrap();
    let editor = mf
        .iter()
        .find(|m| m.manager.as_deref() == Some("editor"))
        .expect("editor entry");
    assert_eq!(editor.operation.as_deref(), Some("Update"));
    assert_eq!(
        editor.fields_v1.as_ref().unwrap().0,
        json!({"f:data": {"f:y": {}}})
    );
}

#[tokio::test]
async fn noop_apply_does_not_bump_resource_version() {
    let env = env().await;
    let api: Api<ConfigMap> = env.api();
    let pp = PatchParams::apply("mgr");
    let first = api
        .patch("a", &pp, &Patch::Apply(cm_apply("a", json!({"k": "v"}))))
        .await
        .unwrap();
    let rv = api
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version;
    let second = api
        .patch("a", &pp, &Patch::Apply(cm_apply("a", json!({"k": "v"}))))
        .await
        .unwrap();
    assert_eq!(first.resource_version(), second.resource_version());
    if env.sim.is_some() {
        // On a shared real cluster other writers move the collection version.
        assert_eq!(
            api.list(&Default::default())
                .await
                .unwrap()
                .metadata
                .resource_version,
            rv
        );
    }
}
