//! JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge
//! patch (pure functions).

use serde_json::Value;

use crate::fieldset::{ITEM, ListType, TypeRules, item_key};

/// The patch types the server accepts, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub(crate) fn from_content_type(ct: &str) -> Option<PatchType> {
        let ct = ct.split(';').next().unwrap_or("").trim();
        match ct {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// Applies an RFC 6902 JSON patch. Like the real server (evanphx/json-patch),
/// a `test` of `null` against a missing path succeeds.
pub(crate) fn json_patch(doc: &Value, patch: &Value) -> Result<Value, String> {
    let ops: Vec<json_patch::PatchOperation> =
        serde_json::from_value(patch.clone()).map_err(|e| format!("invalid JSON patch: {e}"))?;
    let ops: Vec<json_patch::PatchOperation> = ops
        .into_iter()
        .filter(|op| match op {
            json_patch::PatchOperation::Test(t) => {
                !(t.value.is_null() && doc.pointer(t.path.as_str()).is_none())
            }
            _ => true,
        })
        .collect();
    let mut out = doc.clone();
    json_patch::patch(&mut out, &ops).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Applies an RFC 7386 merge patch.
pub(crate) fn merge_patch(doc: &Value, patch: &Value) -> Value {
    let mut out = doc.clone();
    json_patch::merge(&mut out, patch);
    out
}

/// Applies a strategic merge patch: a merge patch in which associative lists
/// (by the type's merge keys) are merged item by item, sets are unioned and
/// `$patch: delete|replace`, `$deleteFromPrimitiveList/<field>` and
/// `$retainKeys` directives are honoured. `$setElementOrder` is ignored.
pub(crate) fn strategic_merge_patch(doc: &Value, patch: &Value, rules: &TypeRules) -> Value {
    let mut out = doc.clone();
    smp(&mut out, patch, rules, &mut Vec::new());
    out
}

fn smp(target: &mut Value, patch: &Value, rules: &TypeRules, path: &mut Vec<String>) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = patch.clone();
        strip_directives(&mut replaced);
        *target = replaced;
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let Some(t) = target.as_object_mut() else {
        return;
    };
    if let Some(retain) = p.get("$retainKeys").and_then(Value::as_array) {
        t.retain(|k, _| retain.iter().any(|r| r.as_str() == Some(k)));
    }
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Some(del)) = (t.get_mut(field), v.as_array()) {
                items.retain(|i| !del.contains(i));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        path.push(k.clone());
        match (t.get_mut(k), v) {
            (Some(existing @ Value::Object(_)), Value::Object(_)) if !rules.atomic_object(path) => {
                smp(existing, v, rules, path);
            }
            (Some(Value::Array(existing)), Value::Array(items)) => {
                merge_list(existing, items, rules, path)
            }
            _ => {
                let mut fresh = v.clone();
                strip_directives(&mut fresh);
                t.insert(k.clone(), fresh);
            }
        }
        path.pop();
    }
}

fn merge_list(
    existing: &mut Vec<Value>,
    items: &[Value],
    rules: &TypeRules,
    path: &mut Vec<String>,
) {
    match rules.list_type(path) {
        ListType::Atomic => *existing = items.to_vec(),
        ListType::Set => {
            for i in items {
                if !existing.contains(i) {
                    existing.push(i.clone());
                }
            }
        }
        ListType::Map(keys) => {
            for item in items {
                let key = item_key(item, &keys);
                let pos = key.as_ref().and_then(|k| {
                    existing
                        .iter()
                        .position(|x| item_key(x, &keys).as_ref() == Some(k))
                });
                let directive = item.get("$patch").and_then(Value::as_str);
                match (pos, directive) {
                    (Some(i), Some("delete")) => {
                        existing.remove(i);
                    }
                    (None, Some("delete")) => {}
                    (Some(i), _) => {
                        path.push(ITEM.to_string());
                        smp(&mut existing[i], item, rules, path);
                        path.pop();
                    }
                    (None, _) => {
                        let mut fresh = item.clone();
                        strip_directives(&mut fresh);
                        existing.push(fresh);
                    }
                }
            }
        }
    }
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.retain(|k, _| !k.starts_with('$'));
            o.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_test_null_on_missing_path_passes() {
        let doc = json!({"metadata": {"name": "a"}});
        let patch = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}
        ]);
        let out = json_patch(&doc, &patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["f"]));
    }

    #[test]
    fn json_patch_failing_test_is_an_error() {
        let doc = json!({"metadata": {"finalizers": ["a"]}});
        let patch = json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "b"},
            {"op": "remove", "path": "/metadata/finalizers/0"}]);
        assert!(json_patch(&doc, &patch).is_err());
    }

    #[test]
    fn merge_patch_removes_nulls() {
        let out = merge_patch(
            &json!({"a": 1, "b": {"c": 2}}),
            &json!({"a": null, "b": {"d": 3}}),
        );
        assert_eq!(out, json!({"b": {"c": 2, "d": 3}}));
    }

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let doc = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}],
            "tolerations": [{"key": "x"}]}});
        let patch = json!({"spec": {"containers": [{"name": "b", "image": "3"}, {"name": "c", "image": "4"},
            {"name": "a", "$patch": "delete"}], "tolerations": [{"key": "y"}]}});
        let out = strategic_merge_patch(&doc, &patch, &TypeRules::Builtin);
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "b", "image": "3"}, {"name": "c", "image": "4"}],
                "tolerations": [{"key": "y"}]}})
        );
    }

    #[test]
    fn strategic_merge_unions_finalizers_and_deletes_from_primitive_lists() {
        let doc = json!({"metadata": {"finalizers": ["a", "b"]}});
        let out = strategic_merge_patch(
            &doc,
            &json!({"metadata": {"finalizers": ["c"]}}),
            &TypeRules::Builtin,
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
        let out = strategic_merge_patch(
            &doc,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
            &TypeRules::Builtin,
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn content_types_are_recognised() {
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(PatchType::from_content_type("text/plain"), None);
    }
}
