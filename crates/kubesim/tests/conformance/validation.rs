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

/// The cause a real server adds (field `<nil>`) when a blocking structural
/// error (required, enum, type, too long, too many) kept the CEL rules from
/// running. The Widget schema has CEL rules, so it follows such errors.
fn cel_not_checked() -> (String, String, String) {
    (
        "FieldValueInvalid".into(),
        "<nil>".into(),
        "Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".into(),
    )
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
        [
            (
                "FieldValueRequired".into(),
                "spec.region".into(),
                "Required value".into()
            ),
            cel_not_checked()
        ]
    );
    assert_eq!(
        err.message,
        "Widget.conformance.kubesim.dev \"w\" is invalid: [spec.region: Required value, <nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]"
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
        [
            (
                "FieldValueNotSupported".into(),
                "spec.color".into(),
                "Unsupported value: \"purple\": supported values: \"red\", \"green\", \"blue\""
                    .into()
            ),
            cel_not_checked()
        ]
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
        [
            (
                "FieldValueTypeInvalid".into(),
                "spec.size".into(),
                "Invalid value: \"string\": spec.size in body must be of type integer: \"string\""
                    .into()
            ),
            cel_not_checked()
        ]
    );
}

#[tokio::test]
async fn string_length_and_pattern_are_checked() {
    let env = env().await;
    let api = env.widgets();
    let err = api_error(create(&api, with_spec("w", json!({"size": 1, "region": "x"}))).await);
    assert_eq!(
        causes(&err),
        [(
            "FieldValueInvalid".into(),
            "spec.region".into(),
            "Invalid value: \"x\": spec.region in body should be at least 2 chars long".into()
        )]
    );
    let err = api_error(
        create(
            &api,
            with_spec("w", json!({"size": 1, "region": "Not Valid"})),
        )
        .await,
    );
    assert_eq!(
        causes(&err),
        [(
            "FieldValueInvalid".into(),
            "spec.region".into(),
            "Invalid value: \"Not Valid\": spec.region in body should match '^[a-z0-9-]+$'".into()
        )]
    );
}

#[tokio::test]
async fn a_string_reports_only_its_first_failing_constraint() {
    let env = env().await;
    // Too long and not matching the pattern: only maxLength is reported, and
    // as a blocking error it keeps the CEL rules from running.
    let err = api_error(
        create(
            &env.widgets(),
            with_spec(
                "w",
                json!({"size": 1, "region": "NOT-VALID-AND-FAR-TOO-LONG"}),
            ),
        )
        .await,
    );
    assert_eq!(
        causes(&err),
        [
            (
                "FieldValueTooLong".into(),
                "spec.region".into(),
                "Too long: may not be more than 20 bytes".into()
            ),
            cel_not_checked()
        ]
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
    assert_eq!(
        causes(&err),
        [
            (
                "FieldValueTooMany".into(),
                "spec.tags".into(),
                "Too many: 4: must have at most 3 items".into()
            ),
            cel_not_checked()
        ]
    );
}

#[tokio::test]
async fn set_lists_report_the_second_occurrence_of_each_value() {
    let env = env().await;
    let err = api_error(
        create(
            &env.widgets(),
            with_spec(
                "w",
                json!({"size": 1, "region": "eu", "tags": ["a", "a", "a"]}),
            ),
        )
        .await,
    );
    assert_eq!(
        causes(&err),
        [(
            "FieldValueDuplicate".into(),
            "spec.tags[1]".into(),
            "Duplicate value: \"a\"".into()
        )]
    );
}

#[tokio::test]
async fn int32_format_is_range_checked() {
    let env = env().await;
    // The range check of the format has no field path (Go prints a nil path
    // as `<nil>`) and comes before the value's own minimum/maximum checks.
    let err = api_error(
        create(
            &env.widgets(),
            with_spec("w", json!({"size": 3_000_000_000i64, "region": "eu"})),
        )
        .await,
    );
    assert_eq!(
        causes(&err),
        [
            (
                "FieldValueInvalid".into(),
                "<nil>".into(),
                "Invalid value: \"\": Checked value must be of type integer with format int32 in spec.size".into()
            ),
            (
                "FieldValueInvalid".into(),
                "spec.size".into(),
                "Invalid value: 3000000000: spec.size in body should be less than or equal to 10"
                    .into()
            )
        ]
    );
    // A fraction is a type error against the format, plus the range check.
    let err = api_error(
        create(
            &env.widgets(),
            with_spec("w", json!({"size": 1.5, "region": "eu"})),
        )
        .await,
    );
    assert_eq!(
        causes(&err),
        [
            (
                "FieldValueTypeInvalid".into(),
                "spec.size".into(),
                "Invalid value: \"float64\": spec.size in body must be of type int32: \"float64\""
                    .into()
            ),
            (
                "FieldValueInvalid".into(),
                "<nil>".into(),
                "Invalid value: \"\": Checked value must be of type integer with format int32 in spec.size".into()
            ),
            cel_not_checked()
        ]
    );
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
    assert_eq!(
        causes(&err),
        [
            (
                "FieldValueTypeInvalid".into(),
                "spec.port".into(),
                "Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"".into()
            ),
            cel_not_checked()
        ]
    );
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
async fn nulls_are_defaulted_or_dropped_and_only_list_items_are_type_errors() {
    let env = env().await;
    let api = env.widgets();
    // A null field is replaced by its default, or dropped (also in a map).
    let obj = create(
        &api,
        with_spec(
            "w",
            json!({"size": 1, "region": "eu", "color": null, "maxSize": null, "labels": {"k": null}}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        obj.data["spec"],
        json!({"size": 1, "region": "eu", "color": "red", "labels": {}})
    );
    // A null required field is missing.
    let err = api_error(create(&api, with_spec("n", json!({"size": 1, "region": null}))).await);
    assert_eq!(
        causes(&err),
        [
            (
                "FieldValueRequired".into(),
                "spec.region".into(),
                "Required value".into()
            ),
            cel_not_checked()
        ]
    );
    // A null list item is a type error.
    let err = api_error(
        create(
            &api,
            with_spec("t", json!({"size": 1, "region": "eu", "tags": ["a", null]})),
        )
        .await,
    );
    assert_eq!(
        causes(&err),
        [
            (
                "FieldValueTypeInvalid".into(),
                "spec.tags[1]".into(),
                "Invalid value: \"null\": spec.tags[1] in body must be of type string: \"null\""
                    .into()
            ),
            cel_not_checked()
        ]
    );
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
    // The value of `self` is left out of the message when it is an object or a list.
    assert_eq!(
        err.message,
        "Widget.conformance.kubesim.dev \"w\" is invalid: spec: Invalid value: size must not exceed maxSize"
    );
    assert_eq!(
        causes(&err),
        [(
            "FieldValueInvalid".into(),
            "spec".into(),
            "Invalid value: size must not exceed maxSize".into()
        )]
    );
}

#[tokio::test]
async fn cel_rules_still_run_after_non_blocking_errors() {
    let env = env().await;
    // `maximum` is not a blocking error: the CEL rule runs and reports too.
    let err = api_error(
        create(
            &env.widgets(),
            with_spec("w", json!({"size": 11, "maxSize": 3, "region": "eu"})),
        )
        .await,
    );
    assert_eq!(
        causes(&err),
        [
            (
                "FieldValueInvalid".into(),
                "spec.size".into(),
                "Invalid value: 11: spec.size in body should be less than or equal to 10".into()
            ),
            (
                "FieldValueInvalid".into(),
                "spec".into(),
                "Invalid value: size must not exceed maxSize".into()
            )
        ]
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
        "Widget.conformance.kubesim.dev \"w\" is invalid: spec.region: Invalid value: \"us\": region is immutable"
    );
    assert_eq!(
        causes(&err),
        [(
            "FieldValueInvalid".into(),
            "spec.region".into(),
            "Invalid value: \"us\": region is immutable".into()
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
    assert_eq!(
        causes(&err),
        [(
            "FieldValueDuplicate".into(),
            "spec.ports[1]".into(),
            "Duplicate value: {\"name\":\"a\"}".into()
        )]
    );
}
