//! Garbage-collection decisions for owner references (pure functions).

use std::collections::HashSet;

use serde_json::Value;

/// What the garbage collector does with one dependent of a removed owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GcAction {
    /// All owners are gone: delete the dependent (background propagation).
    Delete,
    /// Other owners remain (or the owner was deleted with `Orphan`): drop the
    /// owner references with these uids.
    DropOwnerRefs(Vec<String>),
}

/// The uids in an object's `metadata.ownerReferences`.
pub(crate) fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Decides what happens to `dependent` now that the owner `removed_uid` is gone.
/// `live_uids` are the uids of objects that still exist. Returns `None` if the
/// object does not reference the removed owner.
pub(crate) fn decide(
    dependent: &Value,
    removed_uid: &str,
    live_uids: &HashSet<String>,
    orphan: bool,
) -> Option<GcAction> {
    let owners = owner_uids(dependent);
    if !owners.iter().any(|u| u == removed_uid) {
        return None;
    }
    let dangling: Vec<String> = owners
        .iter()
        .filter(|u| *u == removed_uid || !live_uids.contains(*u))
        .cloned()
        .collect();
    if orphan || dangling.len() < owners.len() {
        Some(GcAction::DropOwnerRefs(dangling))
    } else {
        Some(GcAction::Delete)
    }
}

/// Removes the owner references with these uids from an object.
pub(crate) fn drop_owner_refs(obj: &mut Value, uids: &[String]) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(Value::Array(refs)) = meta.get_mut("ownerReferences") {
        refs.retain(|r| {
            r.get("uid")
                .and_then(Value::as_str)
                .is_none_or(|u| !uids.iter().any(|x| x == u))
        });
        if refs.is_empty() {
            meta.remove("ownerReferences");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dep(uids: &[&str]) -> Value {
        let refs: Vec<Value> = uids
            .iter()
            .map(|u| json!({"uid": u, "kind": "X", "name": u, "apiVersion": "v1"}))
            .collect();
        json!({"metadata": {"name": "d", "ownerReferences": refs}})
    }

    #[test]
    fn sole_owner_gone_deletes_dependent() {
        assert_eq!(
            decide(&dep(&["a"]), "a", &HashSet::new(), false),
            Some(GcAction::Delete)
        );
    }

    #[test]
    fn surviving_owner_keeps_dependent() {
        let live: HashSet<String> = ["b".to_string()].into();
        assert_eq!(
            decide(&dep(&["a", "b"]), "a", &live, false),
            Some(GcAction::DropOwnerRefs(vec!["a".into()]))
        );
    }

    #[test]
    fn orphan_keeps_dependent_and_unrelated_objects_are_ignored() {
        assert_eq!(
            decide(&dep(&["a"]), "a", &HashSet::new(), true),
            Some(GcAction::DropOwnerRefs(vec!["a".into()]))
        );
        assert_eq!(decide(&dep(&["b"]), "a", &HashSet::new(), false), None);
    }

    #[test]
    fn drop_owner_refs_removes_empty_list() {
        let mut d = dep(&["a"]);
        drop_owner_refs(&mut d, &["a".into()]);
        assert!(d["metadata"].get("ownerReferences").is_none());
    }
}
