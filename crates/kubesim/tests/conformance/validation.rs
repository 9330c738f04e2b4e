//! CRD structural-schema validation, pruning, defaulting and CEL rules.

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::support::{GROUP, api_error, env, widget};

async fn create(api: &Api<DynamicObject>, obj: Value) -> Result<DynamicObject, kube::Error> {
    api.create(
        &PostParams::default(),
        &serde_json::from_value(obj).unwrap(),
    )
    .await
}

fn with_spec(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "conformance.kubesim.dev/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec})
}

fn causes(status: &kube::core::Status) -> Vec<(String, String, String)> {
    status
        .details
        .as_ref()
        .map(|d| {
            d.causes
                .iter()
                .map(|c| (c.reason.clone(), c.field.clone(), c.message.clone()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn invalid_widget_gets_422_with_a_real_status_body() {
    let env = env().await;
    let err = api_error(
        create(
            &env.widgets(),
            with_spec("w", json!({"size": 11, "region": "eu"})),
        )
        .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        "Widget.conformance.kubesim.dev \"w\" is invalid: spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10"
    );
    let details = err.details.clone().unwrap();
    assert_eq!(
        (
            details.name.as_str(),
            details.group.as_str(),
            details.kind.as_str()
        ),
        ("w", GROUP, "Widget")
    );
    assert_eq!(
        causes(&err),
        [(
            "FieldValueInvalid".into(),
            "spec.size".into(),
            "Invalid value: 11: spec.size in body should be less than or equal to 10".into()
        )]
    );
}

#[tokio::test]
async fn required_fields_are_enforced() {
    let env = env().await;
    let err = api_error(create(&env.widgets(), with_spec("w", json!({"size": 1}))).await);
    assert_eq!(
        causes(&err),
        [(
            "FieldValueRequired".into(),
            "spec.region".into(),
            "Required value".into()
        )]
    );
}

#[tokio::test]
async fn enum_values_are_enforced() {
    let env = env().await;
    let err = api_error(
        create(
            &env.widgets(),
            with_spec("w", json!({"size": 1, "region": "eu", "color": "purple"})),
        )
        .await,
    );
    assert_eq!(
        causes(&err),
        [(
            "FieldValueNotSupported".into(),
            "spec.color".into(),
            "Unsupported value: \"purple\": supported values: \"red\", \"green\", \"blue\"".into()
        )]
    );
}

#[tokio::test]
async fn types_are_checked() {
    let env = env().await;
    let err = api_error(
        create(
            &env.widgets(),
            with_spec("w", json!({"size": "big", "region": "eu"})),
        )
        .await,
    );
    assert_eq!(
        causes(&err),
        [(
            "FieldValueInvalid".into(),
            "spec.size".into(),
            "Invalid value: \"string\": spec.size in body must be of type integer: \"string\""
                .into()
        )]
    );
}

#[tokio::test]
async fn string_length_and_pattern_are_checked() {
    let env = env().await;
    let api = env.widgets();
    let err = api_error(create(&api, with_spec("w", json!({"size": 1, "region": "x"}))).await);
    assert_eq!(causes(&err)[0].1, "spec.region");
    assert!(
        causes(&err)[0]
            .2
            .contains("should be at least 2 chars long"),
        "{:?}",
        causes(&err)
    );
    let err = api_error(
        create(
            &api,
            with_spec("w", json!({"size": 1, "region": "Not Valid"})),
        )
        .await,
    );
    assert!(
        causes(&err)[0].2.contains("should match '^[a-z0-9-]+$'"),
        "{:?}",
        causes(&err)
    );
}

#[tokio::test]
async fn max_items_is_checked() {
    let env = env().await;
    let err = api_error(
        create(
            &env.widgets(),
            with_spec(
                "w",
                json!({"size": 1, "region": "eu", "tags": ["a", "b", "c", "d"]}),
            ),
        )
        .await,
    );
    assert_eq!(causes(&err)[0].0, "FieldValueTooMany");
    assert_eq!(causes(&err)[0].1, "spec.tags");
}

#[tokio::test]
async fn int32_format_is_range_checked() {
    let env = env().await;
    // maximum 10 triggers first on a real server too; use the status' int64 field via a huge size.
    let err = api_error(
        create(
            &env.widgets(),
            with_spec("w", json!({"size": 3_000_000_000i64, "region": "eu"})),
        )
        .await,
    );
    assert_eq!(causes(&err)[0].1, "spec.size");
}

#[tokio::test]
async fn int_or_string_accepts_both() {
    let env = env().await;
    let api = env.widgets();
    create(
        &api,
        with_spec("a", json!({"size": 1, "region": "eu", "port": 80})),
    )
    .await
    .unwrap();
    create(
        &api,
        with_spec("b", json!({"size": 1, "region": "eu", "port": "http"})),
    )
    .await
    .unwrap();
    let err = api_error(
        create(
            &api,
            with_spec("c", json!({"size": 1, "region": "eu", "port": true})),
        )
        .await,
    );
    assert_eq!(causes(&err)[0].1, "spec.port");
}

#[tokio::test]
async fn unknown_fields_are_pruned_and_preserved_fields_kept() {
    let env = env().await;
    let obj = create(
        &env.widgets(),
        with_spec(
            "w",
            json!({"size": 1, "region": "eu", "bogus": 1, "extra": {"free": {"form": true}}}),
        ),
    )
    .await
    .unwrap();
    assert!(obj.data["spec"].get("bogus").is_none());
    assert_eq!(obj.data["spec"]["extra"], json!({"free": {"form": true}}));
}

#[tokio::test]
async fn schema_defaults_are_applied() {
    let env = env().await;
    let obj = create(&env.widgets(), widget("w", 1, "eu")).await.unwrap();
    assert_eq!(obj.data["spec"]["color"], "red");
}

#[tokio::test]
async fn cel_rule_rejects_with_its_message() {
    let env = env().await;
    let err = api_error(
        create(
            &env.widgets(),
            with_spec("w", json!({"size": 5, "maxSize": 3, "region": "eu"})),
        )
        .await,
    );
    assert_eq!(
        err.message,
        "Widget.conformance.kubesim.dev \"w\" is invalid: spec: Invalid value: \"object\": size must not exceed maxSize"
    );
}

#[tokio::test]
async fn cel_transition_rule_makes_region_immutable() {
    let env = env().await;
    let api = env.widgets();
    create(&api, widget("w", 1, "eu")).await.unwrap();
    let err = api_error(
        api.patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"region": "us"}})),
        )
        .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        "Widget.conformance.kubesim.dev \"w\" is invalid: spec.region: Invalid value: \"string\": region is immutable"
    );
    assert_eq!(
        causes(&err),
        [(
            "FieldValueInvalid".into(),
            "spec.region".into(),
            "Invalid value: \"string\": region is immutable".into()
        )]
    );
    // Unchanged region passes the transition rule.
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 2}})),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn duplicate_list_map_keys_are_rejected() {
    let env = env().await;
    let err = api_error(
        create(
            &env.widgets(),
            with_spec("w", json!({"size": 1, "region": "eu", "ports": [{"name": "a", "port": 1}, {"name": "a", "port": 2}]})),
        )
        .await,
    );
    assert_eq!(causes(&err)[0].0, "FieldValueDuplicate");
    assert_eq!(causes(&err)[0].1, "spec.ports[1]");
}
