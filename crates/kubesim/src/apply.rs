//! Server-side apply and `managedFields` tracking (pure functions).
//!
//! Objects are handled as their *managed content*: the object without
//! `apiVersion`, `kind` and the server-owned metadata (see [`managed_content`]).
//! Field ownership is tracked per manager entry, keyed like the real server by
//! (manager, operation, subresource).

use serde_json::{Map, Value, json};

use crate::error::Cause;
pub(crate) use crate::fieldset::TypeRules;
use crate::fieldset::{FieldSet, ITEM, ListType, display_path, item_key, remove_fields, value_at};

/// Metadata fields the server owns; never part of a field set.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "generateName",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ManagedEntry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub time: String,
    /// `""` for the main resource, `"status"` for the status subresource.
    pub subresource: String,
    pub fields: FieldSet,
}

impl ManagedEntry {
    fn same_owner(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    /// How the real server names a manager in conflict messages.
    fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

/// Reads `metadata.managedFields`.
pub(crate) fn read_managed(obj: &Value) -> Vec<ManagedEntry> {
    let Some(entries) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    entries
        .iter()
        .map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            ManagedEntry {
                manager: s("manager"),
                operation: s("operation"),
                api_version: s("apiVersion"),
                time: s("time"),
                subresource: s("subresource"),
                fields: e
                    .get("fieldsV1")
                    .map(FieldSet::from_fields_v1)
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// Writes `metadata.managedFields` (removing it when there are no entries).
pub(crate) fn write_managed(obj: &mut Value, entries: &[ManagedEntry]) {
    let rendered: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": e.fields.to_fields_v1(),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if rendered.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(rendered));
        }
    }
}

/// The object without `apiVersion`, `kind` and server-owned metadata.
pub(crate) fn managed_content(obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(o) = out.as_object_mut() {
        o.remove("apiVersion");
        o.remove("kind");
        if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in SERVER_METADATA {
                meta.remove(*k);
            }
        }
        if o.get("metadata")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            o.remove("metadata");
        }
    }
    out
}

/// Restricts content to what a write through `subresource` may touch:
/// `status` only for `/status`, everything but `status` for the main
/// resource of a type with a status subresource.
pub(crate) fn restrict_to_subresource(
    content: &mut Value,
    subresource: &str,
    has_status_subresource: bool,
) {
    let Some(o) = content.as_object_mut() else {
        return;
    };
    if subresource == "status" {
        o.retain(|k, _| k == "status");
    } else if has_status_subresource {
        o.remove("status");
    }
}

/// Who writes, through which subresource, when: shared by apply and update tracking.
pub(crate) struct WriteContext<'a> {
    pub manager: &'a str,
    pub subresource: &'a str,
    pub api_version: &'a str,
    /// Apply only: take over conflicting fields.
    pub force: bool,
    pub now: &'a str,
    pub rules: &'a TypeRules,
}

/// A field owned by another manager with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conflict {
    pub manager: String,
    pub path: String,
}

/// The `409` message and causes for apply conflicts, worded like the real server.
pub(crate) fn conflict_error(conflicts: &[Conflict]) -> (String, Vec<Cause>) {
    let n = conflicts.len();
    let body = if n == 1 {
        format!(
            "conflict with {}: {}",
            conflicts[0].manager, conflicts[0].path
        )
    } else {
        let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
        managers.dedup();
        managers
            .iter()
            .map(|m| {
                let paths: Vec<String> = conflicts
                    .iter()
                    .filter(|c| c.manager == *m)
                    .map(|c| format!("- {}", c.path))
                    .collect();
                format!("conflicts with {m}:\n{}", paths.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let message = format!(
        "Apply failed with {n} conflict{}: {body}",
        if n == 1 { "" } else { "s" }
    );
    let causes = conflicts
        .iter()
        .map(|c| Cause {
            reason: "FieldManagerConflict".into(),
            message: format!("conflict with {}", c.manager),
            field: c.path.clone(),
        })
        .collect();
    (message, causes)
}

/// Server-side apply of `applied` (managed content, already restricted to the
/// subresource) onto `live` (managed content). Returns the new content and the
/// new managed-field entries, or the conflicts.
pub(crate) fn apply(
    live: &Value,
    entries: &[ManagedEntry],
    applied: &Value,
    req: &WriteContext<'_>,
) -> Result<(Value, Vec<ManagedEntry>), Vec<Conflict>> {
    let applied_set = FieldSet::from_value(applied, req.rules);
    let mut entries: Vec<ManagedEntry> = entries.to_vec();

    // Conflicts: fields other managers own whose live value differs from the applied one.
    let mut conflicts = Vec::new();
    for e in entries.iter().filter(|e| e.manager != req.manager) {
        for (path, leaf) in e.fields.intersection(&applied_set).members() {
            if leaf && value_at(live, &path) != value_at(applied, &path) {
                conflicts.push((e.describe(), path));
            }
        }
    }
    if !conflicts.is_empty() {
        if !req.force {
            return Err(conflicts
                .into_iter()
                .map(|(manager, path)| Conflict {
                    manager,
                    path: display_path(&path),
                })
                .collect());
        }
        let mut taken = FieldSet::default();
        for (_, path) in &conflicts {
            taken.insert(path);
        }
        for e in entries.iter_mut().filter(|e| e.manager != req.manager) {
            e.fields = e.fields.difference(&taken);
        }
    }

    let previous = entries
        .iter()
        .find(|e| e.same_owner(req.manager, "Apply", req.subresource))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others = entries
        .iter()
        .filter(|e| !e.same_owner(req.manager, "Apply", req.subresource))
        .fold(FieldSet::default(), |acc, e| acc.union(&e.fields));

    let mut merged = live.clone();
    remove_fields(&mut merged, &previous.difference(&applied_set), &others);
    let mut path = Vec::new();
    merge_applied(&mut merged, applied, req.rules, &mut path);

    match entries
        .iter_mut()
        .find(|e| e.same_owner(req.manager, "Apply", req.subresource))
    {
        Some(e) => {
            e.fields = applied_set;
            e.time = req.now.to_string();
            e.api_version = req.api_version.to_string();
        }
        None => entries.push(ManagedEntry {
            manager: req.manager.to_string(),
            operation: "Apply".into(),
            api_version: req.api_version.to_string(),
            time: req.now.to_string(),
            subresource: req.subresource.to_string(),
            fields: applied_set,
        }),
    }
    // Fields that no longer exist are owned by nobody.
    let present = FieldSet::from_value(&merged, req.rules);
    for e in &mut entries {
        e.fields = e.fields.intersection(&present);
    }
    entries.retain(|e| !e.fields.is_empty());
    Ok((merged, entries))
}

/// Merges an applied configuration into `target` following the list rules.
fn merge_applied(target: &mut Value, applied: &Value, rules: &TypeRules, path: &mut Vec<String>) {
    match (target, applied) {
        (Value::Object(t), Value::Object(a)) if !rules.atomic_object(path) => {
            for (k, v) in a {
                if v.is_null() {
                    continue;
                }
                path.push(k.clone());
                match t.get_mut(k) {
                    Some(existing) => merge_applied(existing, v, rules, path),
                    None => {
                        t.insert(k.clone(), v.clone());
                    }
                }
                path.pop();
            }
        }
        (Value::Array(t), Value::Array(a)) => match rules.list_type(path) {
            ListType::Atomic => *t = a.clone(),
            ListType::Set => {
                for v in a {
                    if !t.contains(v) {
                        t.push(v.clone());
                    }
                }
            }
            ListType::Map(keys) => {
                for item in a {
                    let key = item_key(item, &keys);
                    let pos = key.as_ref().and_then(|k| {
                        t.iter()
                            .position(|x| item_key(x, &keys).as_ref() == Some(k))
                    });
                    match pos {
                        Some(i) => {
                            path.push(ITEM.to_string());
                            merge_applied(&mut t[i], item, rules, path);
                            path.pop();
                        }
                        None => t.push(item.clone()),
                    }
                }
            }
        },
        (t, a) => *t = a.clone(),
    }
}

/// Updates ownership for a non-apply write (`Update` operation): fields the
/// write changed move to `manager`, removed fields are dropped from everyone.
pub(crate) fn track_update(
    old: Option<&Value>,
    new: &Value,
    entries: &[ManagedEntry],
    ctx: &WriteContext<'_>,
) -> Vec<ManagedEntry> {
    let WriteContext {
        manager,
        subresource,
        api_version,
        now,
        rules,
        ..
    } = *ctx;
    let new_set = FieldSet::from_value(new, rules);
    let old_set = old
        .map(|o| FieldSet::from_value(o, rules))
        .unwrap_or_default();
    let mut changed = FieldSet::default();
    for (path, leaf) in new_set.members() {
        let before = old.and_then(|o| value_at(o, &path));
        let differs = match before {
            None => true,
            Some(b) => leaf && Some(b) != value_at(new, &path),
        };
        if differs {
            changed.insert(&path);
        }
    }
    let removed = old_set.difference(&new_set);
    let mut entries: Vec<ManagedEntry> = entries.to_vec();
    for e in &mut entries {
        e.fields = e.fields.difference(&removed);
        if !e.same_owner(manager, "Update", subresource) {
            e.fields = e.fields.difference(&changed);
        }
    }
    if !changed.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.same_owner(manager, "Update", subresource))
        {
            Some(e) => {
                e.fields = e.fields.union(&changed);
                e.time = now.to_string();
                e.api_version = api_version.to_string();
            }
            None => entries.push(ManagedEntry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: api_version.to_string(),
                time: now.to_string(),
                subresource: subresource.to_string(),
                fields: changed,
            }),
        }
    }
    entries.retain(|e| !e.fields.is_empty());
    entries
}

/// A copy of `obj` with managed-field timestamps blanked, for no-op detection.
pub(crate) fn without_managed_times(obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(entries) = out
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
    {
        for e in entries {
            if let Some(o) = e.as_object_mut() {
                o.remove("time");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(manager: &'a str, force: bool, rules: &'a TypeRules) -> WriteContext<'a> {
        WriteContext {
            manager,
            subresource: "",
            api_version: "v1",
            force,
            now: "2024-01-01T00:00:00Z",
            rules,
        }
    }

    #[test]
    fn apply_creates_and_records_ownership() {
        let rules = TypeRules::Builtin;
        let applied = json!({"data": {"a": "1"}});
        let (merged, entries) =
            apply(&json!({}), &[], &applied, &req("m1", false, &rules)).unwrap();
        assert_eq!(merged, applied);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].operation, "Apply");
        assert_eq!(
            entries[0].fields.to_fields_v1(),
            json!({"f:data": {"f:a": {}}})
        );
    }

    #[test]
    fn apply_removes_fields_the_manager_stopped_applying() {
        let rules = TypeRules::Builtin;
        let (live, entries) = apply(
            &json!({}),
            &[],
            &json!({"data": {"a": "1", "b": "2"}}),
            &req("m1", false, &rules),
        )
        .unwrap();
        let (live, _) = apply(
            &live,
            &entries,
            &json!({"data": {"a": "1"}}),
            &req("m1", false, &rules),
        )
        .unwrap();
        assert_eq!(live, json!({"data": {"a": "1"}}));
    }

    #[test]
    fn apply_keeps_fields_another_manager_owns() {
        let rules = TypeRules::Builtin;
        let (live, entries) = apply(
            &json!({}),
            &[],
            &json!({"data": {"a": "1"}}),
            &req("m1", false, &rules),
        )
        .unwrap();
        let (live, entries) = apply(
            &live,
            &entries,
            &json!({"data": {"a": "1"}}),
            &req("m2", false, &rules),
        )
        .unwrap();
        let (live, entries) =
            apply(&live, &entries, &json!({}), &req("m1", false, &rules)).unwrap();
        assert_eq!(live, json!({"data": {"a": "1"}}));
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].manager, "m2");
    }

    #[test]
    fn apply_conflicts_unless_forced() {
        let rules = TypeRules::Builtin;
        let (live, entries) = apply(
            &json!({}),
            &[],
            &json!({"spec": {"x": 1}}),
            &req("m1", false, &rules),
        )
        .unwrap();
        let err = apply(
            &live,
            &entries,
            &json!({"spec": {"x": 2}}),
            &req("m2", false, &rules),
        )
        .unwrap_err();
        assert_eq!(
            err,
            vec![Conflict {
                manager: "\"m1\"".into(),
                path: ".spec.x".into()
            }]
        );
        let (msg, causes) = conflict_error(&err);
        assert_eq!(
            msg,
            "Apply failed with 1 conflict: conflict with \"m1\": .spec.x"
        );
        assert_eq!(causes[0].field, ".spec.x");
        let (live, entries) = apply(
            &live,
            &entries,
            &json!({"spec": {"x": 2}}),
            &req("m2", true, &rules),
        )
        .unwrap();
        assert_eq!(live, json!({"spec": {"x": 2}}));
        assert_eq!(entries.len(), 1, "m1 lost its only field: {entries:?}");
        assert_eq!(entries[0].manager, "m2");
    }

    #[test]
    fn applying_the_same_value_shares_ownership_without_conflict() {
        let rules = TypeRules::Builtin;
        let (live, entries) = apply(
            &json!({}),
            &[],
            &json!({"spec": {"x": 1}}),
            &req("m1", false, &rules),
        )
        .unwrap();
        let (_, entries) = apply(
            &live,
            &entries,
            &json!({"spec": {"x": 1}}),
            &req("m2", false, &rules),
        )
        .unwrap();
        assert_eq!(entries.len(), 2);
    }

    #[test]
    fn keyed_lists_merge_by_key() {
        let rules = TypeRules::Builtin;
        let live = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}});
        let entries = vec![ManagedEntry {
            manager: "other".into(),
            operation: "Update".into(),
            api_version: "v1".into(),
            time: String::new(),
            subresource: String::new(),
            fields: FieldSet::from_value(&live, &rules),
        }];
        let (merged, _) = apply(
            &live,
            &entries,
            &json!({"spec": {"containers": [{"name": "b", "image": "2", "args": ["x"]}]}}),
            &req("m1", false, &rules),
        )
        .unwrap();
        assert_eq!(
            merged,
            json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2", "args": ["x"]}]}})
        );
    }

    #[test]
    fn track_update_moves_changed_fields_to_the_updater() {
        let rules = TypeRules::Builtin;
        let old = json!({"data": {"a": "1", "b": "2"}});
        let entries = track_update(None, &old, &[], &req("creator", false, &rules));
        assert_eq!(entries[0].fields, FieldSet::from_value(&old, &rules));
        let new = json!({"data": {"a": "changed"}});
        let entries = track_update(Some(&old), &new, &entries, &req("editor", false, &rules));
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].manager, "editor");
        assert_eq!(
            entries[0].fields.to_fields_v1(),
            json!({"f:data": {"f:a": {}}})
        );
    }

    #[test]
    fn managed_content_strips_server_fields() {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "uid": "u", "resourceVersion": "1", "labels": {"x": "y"}}, "data": {}});
        assert_eq!(
            managed_content(&obj),
            json!({"metadata": {"labels": {"x": "y"}}, "data": {}})
        );
    }
}
