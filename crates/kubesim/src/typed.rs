//! Server-side apply's conversion of an applied configuration to a typed
//! object, as the real server does it (structured-merge-diff): a value of
//! the wrong type, or a field the type does not declare, is a `500` whose
//! message lists the fields, e.g. after a YAML 1.1 `name: y` became `true`.
//! kubesim knows the types of ObjectMeta (every kind), of ConfigMaps and
//! Secrets (every field), and of custom resources (their CRD schema).

use serde_json::Value;

use crate::error::ApiError;
use crate::gofmt::{GoNumber, go_float, go_json, go_number, go_quote};

/// ObjectMeta's fields (every kind) and their types.
const OBJECT_META: &[(&str, Ty)] = &[
    ("name", Ty::String),
    ("generateName", Ty::String),
    ("namespace", Ty::String),
    ("selfLink", Ty::String),
    ("uid", Ty::String),
    ("resourceVersion", Ty::String),
    ("generation", Ty::Numeric),
    ("creationTimestamp", Ty::String),
    ("deletionTimestamp", Ty::String),
    ("deletionGracePeriodSeconds", Ty::Numeric),
    ("labels", Ty::StringMap),
    ("annotations", Ty::StringMap),
    ("ownerReferences", Ty::List),
    ("finalizers", Ty::StringSet),
    ("managedFields", Ty::List),
];

const CONFIG_MAP: &[(&str, Ty)] = &[
    ("apiVersion", Ty::String),
    ("kind", Ty::String),
    ("metadata", Ty::Meta),
    ("data", Ty::StringMap),
    ("binaryData", Ty::StringMap),
    ("immutable", Ty::Boolean),
];

const SECRET: &[(&str, Ty)] = &[
    ("apiVersion", Ty::String),
    ("kind", Ty::String),
    ("metadata", Ty::Meta),
    ("data", Ty::StringMap),
    ("stringData", Ty::StringMap),
    ("type", Ty::String),
    ("immutable", Ty::Boolean),
];

#[derive(Clone, Copy)]
enum Ty {
    String,
    Numeric,
    Boolean,
    StringMap,
    StringSet,
    List,
    Meta,
}

/// Checks an applied configuration; `api_version` and `kind` name its type,
/// `schema` is a custom resource's structural schema.
pub(crate) fn check_apply(
    applied: &Value,
    group: &str,
    api_version: &str,
    kind: &str,
    schema: Option<&Value>,
) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let fields = match (group, kind) {
        ("", "ConfigMap") => Some(CONFIG_MAP),
        ("", "Secret") => Some(SECRET),
        _ => None,
    };
    if let Some(fields) = fields {
        check_fields(applied, fields, "", &mut errors);
    } else if let Some(schema) = schema {
        check_schema(applied, schema, "", true, &mut errors);
    } else if let Some(meta) = applied.get("metadata") {
        check_ty(meta, Ty::Meta, ".metadata", &mut errors);
    }
    if errors.is_empty() {
        return Ok(());
    }
    errors.sort();
    let meta = |f: &str| {
        applied
            .pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let gv = if api_version.contains('/') {
        api_version.to_string()
    } else {
        format!("/{api_version}")
    };
    let listed = if errors.len() == 1 {
        errors.remove(0)
    } else {
        format!("errors:\n  {}", errors.join("\n  "))
    };
    Err(ApiError::internal(format!(
        "failed to create typed patch object ({}/{}; {gv}, Kind={kind}): {listed}",
        meta("namespace"),
        meta("name"),
    )))
}

/// The applied configuration as the real server stores it: a `null` value in
/// a known map of strings becomes `""` (the typed object's zero value).
pub(crate) fn normalize_apply(applied: &Value, group: &str, kind: &str) -> Value {
    let mut out = applied.clone();
    let mut maps = vec!["/metadata/labels", "/metadata/annotations"];
    match (group, kind) {
        ("", "ConfigMap") => maps.extend(["/data", "/binaryData"]),
        ("", "Secret") => maps.extend(["/data", "/stringData"]),
        _ => {}
    }
    for pointer in maps {
        if let Some(Value::Object(map)) = out.pointer_mut(pointer) {
            for v in map.values_mut() {
                if v.is_null() {
                    *v = Value::String(String::new());
                }
            }
        }
    }
    out
}

fn not_declared(path: &str, errors: &mut Vec<String>) {
    errors.push(format!("{path}: field not declared in schema"));
}

fn check_fields(v: &Value, fields: &[(&str, Ty)], path: &str, errors: &mut Vec<String>) {
    let Some(map) = v.as_object() else {
        return;
    };
    for (k, item) in map {
        let child = format!("{path}.{k}");
        match fields.iter().find(|(name, _)| name == k) {
            Some((_, ty)) => check_ty(item, *ty, &child, errors),
            None => not_declared(&child, errors),
        }
    }
}

fn expected_string(v: &Value, path: &str, errors: &mut Vec<String>) {
    errors.push(format!(
        "{path}: expected string, got &value.valueUnstructured{{Value:{}}}",
        go_sharp(v)
    ));
}

fn expected_numeric(v: &Value, path: &str, errors: &mut Vec<String>) {
    let got = match v {
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Array(_) => "[]interface {}",
        _ => "map[string]interface {}",
    };
    errors.push(format!(
        "{path}: expected numeric (int or float), got {got}"
    ));
}

fn expected(what: &str, v: &Value, path: &str, errors: &mut Vec<String>) {
    errors.push(format!("{path}: expected {what}, got &{{{}}}", go_plain(v)));
}

fn check_ty(v: &Value, ty: Ty, path: &str, errors: &mut Vec<String>) {
    if v.is_null() {
        return;
    }
    match ty {
        Ty::String if !v.is_string() => expected_string(v, path, errors),
        Ty::Numeric if !v.is_number() => expected_numeric(v, path, errors),
        Ty::Boolean if !v.is_boolean() => expected("boolean", v, path, errors),
        Ty::Meta => match v.as_object() {
            None => expected("map", v, path, errors),
            Some(_) => check_fields(v, OBJECT_META, path, errors),
        },
        Ty::StringMap => match v.as_object() {
            None => expected("map", v, path, errors),
            Some(map) => {
                for (k, item) in map {
                    check_ty(item, Ty::String, &format!("{path}.{k}"), errors);
                }
            }
        },
        Ty::StringSet | Ty::List => match v.as_array() {
            None => expected("list", v, path, errors),
            Some(items) if matches!(ty, Ty::StringSet) => {
                for item in items {
                    check_ty(
                        item,
                        Ty::String,
                        &format!("{path}[={}]", go_json(item)),
                        errors,
                    );
                }
            }
            Some(_) => {}
        },
        _ => {}
    }
}

/// A custom resource against its structural schema, like structured-merge-diff
/// with the schema the real server derives from the CRD.
fn check_schema(v: &Value, schema: &Value, path: &str, root: bool, errors: &mut Vec<String>) {
    if v.is_null()
        || schema
            .get("x-kubernetes-int-or-string")
            .and_then(Value::as_bool)
            == Some(true)
    {
        return;
    }
    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    match schema.get("type").and_then(Value::as_str) {
        Some("string") if !v.is_string() => expected_string(v, path, errors),
        Some("integer" | "number") if !v.is_number() => expected_numeric(v, path, errors),
        Some("boolean") if !v.is_boolean() => expected("boolean", v, path, errors),
        Some("array") => match v.as_array() {
            None => expected("list", v, path, errors),
            Some(items) => check_items(items, schema, path, errors),
        },
        Some("object") | None if !preserve || v.is_object() => match v.as_object() {
            None if schema.get("type").is_some() => expected("map", v, path, errors),
            None => {}
            Some(map) => {
                let props = schema.get("properties").and_then(Value::as_object);
                let additional = schema.get("additionalProperties").filter(|a| a.is_object());
                for (k, item) in map {
                    let child = format!("{path}.{k}");
                    if root && (k == "apiVersion" || k == "kind") {
                        check_ty(item, Ty::String, &child, errors);
                    } else if root && k == "metadata" {
                        check_ty(item, Ty::Meta, &child, errors);
                    } else if let Some(s) = props.and_then(|p| p.get(k)).or(additional) {
                        check_schema(item, s, &child, false, errors);
                    } else if !preserve {
                        not_declared(&child, errors);
                    }
                }
            }
        },
        _ => {}
    }
}

fn check_items(items: &[Value], schema: &Value, path: &str, errors: &mut Vec<String>) {
    let item_schema = schema.get("items");
    let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
    let keys: Vec<&str> = schema
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (i, item) in items.iter().enumerate() {
        let item_path = match list_type {
            Some("set") => {
                if item.is_array() || item.is_object() {
                    let what = if item.is_array() { "lists" } else { "maps" };
                    errors.push(format!(
                        "{path}: element {i}: not supported: associative list with {what} as elements"
                    ));
                    return;
                }
                format!("{path}[={}]", go_json(item))
            }
            Some("map") if !keys.is_empty() => {
                let Some(obj) = item.as_object() else {
                    errors.push(format!(
                        "{path}: element {i}: associative list with keys may not have non-map elements"
                    ));
                    return;
                };
                let shown: Vec<String> = keys
                    .iter()
                    .filter_map(|k| obj.get(*k).map(|v| format!("{k}={}", go_json(v))))
                    .collect();
                format!("{path}[{}]", shown.join(","))
            }
            _ => format!("{path}[{i}]"),
        };
        if let Some(s) = item_schema {
            check_schema(item, s, &item_path, false, errors);
        }
    }
}

fn go_num(v: &Value) -> String {
    match go_number(v) {
        Some(GoNumber::Int(i)) => i.to_string(),
        Some(GoNumber::Float(f)) => go_float(f),
        None => v.to_string(),
    }
}

/// Go's `%#v` of a decoded JSON value.
fn go_sharp(v: &Value) -> String {
    match v {
        Value::Null => "interface {}(nil)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(_) => go_num(v),
        Value::String(s) => go_quote(s),
        Value::Array(items) => format!(
            "[]interface {{}}{{{}}}",
            items.iter().map(go_sharp).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            format!(
                "map[string]interface {{}}{{{}}}",
                keys.iter()
                    .map(|k| format!("{}:{}", go_quote(k), go_sharp(&map[*k])))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }
}

/// Go's `%v` of a decoded JSON value.
fn go_plain(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(_) => go_num(v),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(go_plain).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            format!(
                "map[{}]",
                keys.iter()
                    .map(|k| format!("{k}:{}", go_plain(&map[*k])))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(applied: Value) -> String {
        check_apply(&applied, "", "v1", "ConfigMap", None)
            .unwrap_err()
            .message
    }

    #[test]
    fn mismatches_are_reported_like_the_real_server() {
        // Each message as a v1.36 kube-apiserver answered the same apply.
        assert_eq!(
            message(json!({"metadata": {"name": true}, "data": {"k": "v"}})),
            "failed to create typed patch object (/; /v1, Kind=ConfigMap): .metadata.name: expected string, got &value.valueUnstructured{Value:true}"
        );
        assert_eq!(
            message(json!({"metadata": {"name": "t1", "labels": "x"}})),
            "failed to create typed patch object (/t1; /v1, Kind=ConfigMap): .metadata.labels: expected map, got &{x}"
        );
        assert_eq!(
            message(json!({"metadata": {"name": "t3"}, "data": [1]})),
            "failed to create typed patch object (/t3; /v1, Kind=ConfigMap): .data: expected map, got &{[1]}"
        );
        assert_eq!(
            message(
                json!({"metadata": {"name": "t5", "namespace": "probe", "labels": {"a": {"b": "c"}}}, "data": {"k": ["x"]}})
            ),
            "failed to create typed patch object (probe/t5; /v1, Kind=ConfigMap): errors:\n  .data.k: expected string, got &value.valueUnstructured{Value:[]interface {}{\"x\"}}\n  .metadata.labels.a: expected string, got &value.valueUnstructured{Value:map[string]interface {}{\"b\":\"c\"}}"
        );
        assert_eq!(
            message(json!({"metadata": {"name": "t10"}, "data": {"m": 1e30, "k": 1.5}})),
            "failed to create typed patch object (/t10; /v1, Kind=ConfigMap): errors:\n  .data.k: expected string, got &value.valueUnstructured{Value:1.5}\n  .data.m: expected string, got &value.valueUnstructured{Value:1e+30}"
        );
        assert!(
            check_apply(
                &json!({"metadata": {"name": "ok"}, "data": {"k": "v", "n": null}}),
                "",
                "v1",
                "ConfigMap",
                None
            )
            .is_ok()
        );
        assert_eq!(
            message(json!({"metadata": {"name": "d8"}, "bogus": 1})),
            "failed to create typed patch object (/d8; /v1, Kind=ConfigMap): .bogus: field not declared in schema"
        );
        assert_eq!(
            message(json!({"metadata": {"name": "d10"}, "immutable": "x"})),
            "failed to create typed patch object (/d10; /v1, Kind=ConfigMap): .immutable: expected boolean, got &{x}"
        );
    }

    #[test]
    fn custom_resources_are_checked_against_their_schema() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "size": {"type": "integer"},
                "region": {"type": "string"},
                "port": {"x-kubernetes-int-or-string": true},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "mk": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["a", "b"],
                    "items": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}}
            }},
            "status": {"type": "object", "properties": {"phase": {"type": "string"}}}
        }});
        let message = |spec: Value| {
            let applied = json!({"apiVersion": "x.dev/v1", "kind": "W", "metadata": {"name": "w"}, "spec": spec});
            check_apply(&applied, "x.dev", "x.dev/v1", "W", Some(&schema))
                .err()
                .map(|e| e.message.split_once("): ").unwrap().1.to_string())
        };
        // Each as a v1.36 kube-apiserver answered for the same schema and values.
        assert_eq!(
            message(json!({"size": "big"})).unwrap(),
            ".spec.size: expected numeric (int or float), got string"
        );
        assert_eq!(
            message(json!({"size": [1]})).unwrap(),
            ".spec.size: expected numeric (int or float), got []interface {}"
        );
        assert_eq!(
            message(json!({"region": 5})).unwrap(),
            ".spec.region: expected string, got &value.valueUnstructured{Value:5}"
        );
        assert_eq!(
            message(json!({"tags": "x"})).unwrap(),
            ".spec.tags: expected list, got &{x}"
        );
        assert_eq!(
            message(json!({"tags": [1]})).unwrap(),
            ".spec.tags[=1]: expected string, got &value.valueUnstructured{Value:1}"
        );
        assert_eq!(
            message(json!({"tags": ["a", ["b"]]})).unwrap(),
            ".spec.tags: element 1: not supported: associative list with lists as elements"
        );
        assert_eq!(
            message(json!({"mk": [{"a": "x", "b": true}]})).unwrap(),
            ".spec.mk[a=\"x\",b=true].b: expected numeric (int or float), got bool"
        );
        assert_eq!(
            message(json!({"mk": ["x"]})).unwrap(),
            ".spec.mk: element 0: associative list with keys may not have non-map elements"
        );
        assert_eq!(
            message(json!({"bogus": 1})).unwrap(),
            ".spec.bogus: field not declared in schema"
        );
        assert_eq!(
            message(json!({"port": true, "extra": {"a": [1, true]}, "size": null})),
            None
        );
        let applied = json!({"apiVersion": "x.dev/v1", "kind": "W", "metadata": {"name": "w", "bogus": 1}, "status": {"phase": 5}});
        assert_eq!(
            check_apply(&applied, "x.dev", "x.dev/v1", "W", Some(&schema))
                .unwrap_err()
                .message,
            "failed to create typed patch object (/w; x.dev/v1, Kind=W): errors:\n  .metadata.bogus: field not declared in schema\n  .status.phase: expected string, got &value.valueUnstructured{Value:5}"
        );
    }
}
