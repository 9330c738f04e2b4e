//! Field sets in the `FieldsV1` format used by `metadata.managedFields`, and
//! the per-type list/map rules (associative list keys, sets, atomics) that
//! server-side apply and strategic merge need.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

/// Marker used in type paths for "an item of the list at this point".
pub(crate) const ITEM: &str = "[]";

/// How a list is merged and owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListType {
    /// Replaced as a whole, owned as one field.
    Atomic,
    /// A set of scalars, each item owned separately.
    Set,
    /// An associative list keyed by these fields.
    Map(Vec<String>),
}

/// Type information for merging: built-in kinds use a table of well-known
/// fields, CRDs read `x-kubernetes-list-type`/`x-kubernetes-list-map-keys`
/// and `x-kubernetes-map-type` from their schema.
#[derive(Debug, Clone)]
pub(crate) enum TypeRules {
    Builtin,
    Schema(Arc<Value>),
}

impl TypeRules {
    /// The list type of the list at `path` (field names, with [`ITEM`] for list items).
    pub(crate) fn list_type(&self, path: &[String]) -> ListType {
        match self {
            TypeRules::Schema(schema) if path.first().map(String::as_str) != Some("metadata") => {
                let Some(node) = schema_at(schema, path) else {
                    return ListType::Atomic;
                };
                match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
                    Some("set") => ListType::Set,
                    Some("map") => {
                        let keys: Vec<String> = node
                            .get("x-kubernetes-list-map-keys")
                            .and_then(Value::as_array)
                            .map(|a| {
                                a.iter()
                                    .filter_map(|k| k.as_str().map(String::from))
                                    .collect()
                            })
                            .unwrap_or_default();
                        if keys.is_empty() {
                            ListType::Atomic
                        } else {
                            ListType::Map(keys)
                        }
                    }
                    _ => ListType::Atomic,
                }
            }
            _ => builtin_list_type(path),
        }
    }

    /// Whether the object at `path` is atomic (owned and replaced as a whole).
    pub(crate) fn atomic_object(&self, path: &[String]) -> bool {
        match self {
            TypeRules::Schema(schema) if path.first().map(String::as_str) != Some("metadata") => {
                schema_at(schema, path).is_some_and(|n| {
                    n.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic")
                        || n.get("x-kubernetes-int-or-string").and_then(Value::as_bool)
                            == Some(true)
                })
            }
            // LabelSelector is a `structType=atomic`; Service.spec.selector a `mapType=atomic`.
            _ => path.last().map(String::as_str) == Some("selector"),
        }
    }
}

/// Navigates a structural schema along a type path.
pub(crate) fn schema_at<'a>(schema: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = schema;
    for seg in path {
        cur = if seg == ITEM {
            cur.get("items")?
        } else if let Some(p) = cur.get("properties").and_then(|p| p.get(seg.as_str())) {
            p
        } else {
            cur.get("additionalProperties").filter(|a| a.is_object())?
        };
    }
    Some(cur)
}

const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

fn builtin_list_type(path: &[String]) -> ListType {
    let keys = |ks: &[&str]| ListType::Map(ks.iter().map(|k| k.to_string()).collect());
    let Some(name) = path.last() else {
        return ListType::Atomic;
    };
    match name.as_str() {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets" => keys(&["name"]),
        "ports" => {
            let in_container = path.len() >= 3
                && path[path.len() - 2] == ITEM
                && CONTAINER_LISTS.contains(&path[path.len() - 3].as_str());
            if in_container {
                keys(&["containerPort", "protocol"])
            } else {
                keys(&["port", "protocol"])
            }
        }
        "volumeMounts" => keys(&["mountPath"]),
        "conditions" => keys(&["type"]),
        "topologySpreadConstraints" => keys(&["topologyKey", "whenUnsatisfiable"]),
        "ownerReferences" => keys(&["uid"]),
        "finalizers" => ListType::Set,
        _ => ListType::Atomic,
    }
}

/// Default values of list-map key fields that the real server would have
/// defaulted before keying (ports default to TCP).
fn key_default(key: &str) -> Option<Value> {
    (key == "protocol").then(|| Value::String("TCP".into()))
}

/// The key of a list item under `keys`, or `None` if the item is not an object.
pub(crate) fn item_key(item: &Value, keys: &[String]) -> Option<BTreeMap<String, Value>> {
    let obj = item.as_object()?;
    let mut out = BTreeMap::new();
    for k in keys {
        match obj.get(k).cloned().or_else(|| key_default(k)) {
            Some(v) => {
                out.insert(k.clone(), v);
            }
            None => {
                // Required key fields missing: only the first key is mandatory.
                if out.is_empty() {
                    return None;
                }
            }
        }
    }
    Some(out)
}

/// `k:{"a":1,"b":"x"}` path element for a key.
pub(crate) fn key_element(key: &BTreeMap<String, Value>) -> String {
    let fields: Vec<String> = key
        .iter()
        .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), v))
        .collect();
    format!("k:{{{}}}", fields.join(","))
}

fn item_matches_key(item: &Value, key: &BTreeMap<String, Value>) -> bool {
    key.iter().all(|(k, want)| {
        item.get(k)
            .cloned()
            .or_else(|| key_default(k))
            .is_some_and(|v| &v == want)
    })
}

/// A set of field paths, as a tree. `member` marks that the path to this node
/// is itself in the set (printed as `{}` for leaves and `".": {}` otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSet {
    pub member: bool,
    pub children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    /// The set of fields present in `value` (the object content, see
    /// [`crate::apply::managed_content`]).
    pub(crate) fn from_value(value: &Value, rules: &TypeRules) -> FieldSet {
        let mut path = Vec::new();
        let mut root = Self::node(value, rules, &mut path);
        root.member = false;
        root
    }

    fn node(value: &Value, rules: &TypeRules, path: &mut Vec<String>) -> FieldSet {
        let leaf = FieldSet {
            member: true,
            children: BTreeMap::new(),
        };
        match value {
            Value::Object(map) if !map.is_empty() && !rules.atomic_object(path) => {
                let mut fs = FieldSet::default();
                for (k, v) in map {
                    if v.is_null() {
                        continue;
                    }
                    path.push(k.clone());
                    fs.children
                        .insert(format!("f:{k}"), Self::node(v, rules, path));
                    path.pop();
                }
                if fs.children.is_empty() { leaf } else { fs }
            }
            Value::Array(items) if !items.is_empty() => match rules.list_type(path) {
                ListType::Atomic => leaf,
                ListType::Set => FieldSet {
                    member: false,
                    children: items
                        .iter()
                        .map(|i| {
                            (
                                format!("v:{i}"),
                                FieldSet {
                                    member: true,
                                    children: BTreeMap::new(),
                                },
                            )
                        })
                        .collect(),
                },
                ListType::Map(keys) => {
                    let mut fs = FieldSet::default();
                    for item in items {
                        let Some(key) = item_key(item, &keys) else {
                            return leaf;
                        };
                        path.push(ITEM.to_string());
                        let mut child = Self::node(item, rules, path);
                        path.pop();
                        child.member = true;
                        fs.children.insert(key_element(&key), child);
                    }
                    fs
                }
            },
            _ => leaf,
        }
    }

    /// Parses a `fieldsV1` object.
    pub(crate) fn from_fields_v1(v: &Value) -> FieldSet {
        let mut fs = FieldSet::default();
        if let Some(obj) = v.as_object() {
            for (k, c) in obj {
                if k == "." {
                    fs.member = true;
                } else {
                    let mut child = Self::from_fields_v1(c);
                    if child.children.is_empty() {
                        child.member = true;
                    }
                    fs.children.insert(k.clone(), child);
                }
            }
        }
        fs
    }

    /// Renders the `fieldsV1` object.
    pub(crate) fn to_fields_v1(&self) -> Value {
        let mut obj = Map::new();
        if self.member && !self.children.is_empty() {
            obj.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, c) in &self.children {
            obj.insert(k.clone(), c.to_fields_v1());
        }
        Value::Object(obj)
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    pub(crate) fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.member |= other.member;
        for (k, c) in &other.children {
            let merged = match out.children.get(k) {
                Some(mine) => mine.union(c),
                None => c.clone(),
            };
            out.children.insert(k.clone(), merged);
        }
        out
    }

    pub(crate) fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            let d = match other.children.get(k) {
                Some(o) => c.difference(o),
                None => c.clone(),
            };
            if !d.is_empty() {
                out.children.insert(k.clone(), d);
            }
        }
        out
    }

    pub(crate) fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            if let Some(o) = other.children.get(k) {
                let i = c.intersection(o);
                if !i.is_empty() {
                    out.children.insert(k.clone(), i);
                }
            }
        }
        out
    }

    /// Paths of all member nodes, each paired with whether it is a leaf.
    pub(crate) fn members(&self) -> Vec<(Vec<String>, bool)> {
        let mut out = Vec::new();
        self.collect_members(&mut Vec::new(), &mut out);
        out
    }

    fn collect_members(&self, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, bool)>) {
        if self.member && !path.is_empty() {
            out.push((path.clone(), self.children.is_empty()));
        }
        for (k, c) in &self.children {
            path.push(k.clone());
            c.collect_members(path, out);
            path.pop();
        }
    }

    /// Adds `path` as a member.
    pub(crate) fn insert(&mut self, path: &[String]) {
        let mut cur = self;
        for p in path {
            cur = cur.children.entry(p.clone()).or_default();
        }
        cur.member = true;
    }
}

/// The child of `value` named by one path element.
pub(crate) fn child<'a>(value: &'a Value, elem: &str) -> Option<&'a Value> {
    if let Some(name) = elem.strip_prefix("f:") {
        return value.as_object()?.get(name);
    }
    let items = value.as_array()?;
    if let Some(key) = elem.strip_prefix("k:") {
        let key: BTreeMap<String, Value> = serde_json::from_str(key).ok()?;
        return items.iter().find(|i| item_matches_key(i, &key));
    }
    if let Some(v) = elem.strip_prefix("v:") {
        let v: Value = serde_json::from_str(v).ok()?;
        return items.iter().find(|i| **i == v);
    }
    if let Some(i) = elem.strip_prefix("i:") {
        return items.get(i.parse::<usize>().ok()?);
    }
    None
}

fn child_mut<'a>(value: &'a mut Value, elem: &str) -> Option<&'a mut Value> {
    if let Some(name) = elem.strip_prefix("f:") {
        return value.as_object_mut()?.get_mut(name);
    }
    let items = value.as_array_mut()?;
    if let Some(key) = elem.strip_prefix("k:") {
        let key: BTreeMap<String, Value> = serde_json::from_str(key).ok()?;
        return items.iter_mut().find(|i| item_matches_key(i, &key));
    }
    if let Some(v) = elem.strip_prefix("v:") {
        let v: Value = serde_json::from_str(v).ok()?;
        return items.iter_mut().find(|i| **i == v);
    }
    None
}

fn remove_child(value: &mut Value, elem: &str) {
    if let Some(name) = elem.strip_prefix("f:") {
        if let Some(obj) = value.as_object_mut() {
            obj.remove(name);
        }
        return;
    }
    let Some(items) = value.as_array_mut() else {
        return;
    };
    if let Some(key) = elem.strip_prefix("k:") {
        if let Ok(key) = serde_json::from_str::<BTreeMap<String, Value>>(key) {
            items.retain(|i| !item_matches_key(i, &key));
        }
    } else if let Some(v) = elem.strip_prefix("v:")
        && let Ok(v) = serde_json::from_str::<Value>(v)
    {
        items.retain(|i| *i != v);
    }
}

/// The value at a field-set path.
pub(crate) fn value_at<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = value;
    for p in path {
        cur = child(cur, p)?;
    }
    Some(cur)
}

/// Removes from `value` every member of `remove`, except where `keep` (the
/// fields other managers own) still owns the path or something below it.
pub(crate) fn remove_fields(value: &mut Value, remove: &FieldSet, keep: &FieldSet) {
    for (elem, rm) in &remove.children {
        let keep_child = keep.children.get(elem);
        if rm.member && keep_child.is_none_or(FieldSet::is_empty) {
            remove_child(value, elem);
        } else if let Some(c) = child_mut(value, elem) {
            let empty = FieldSet::default();
            remove_fields(c, rm, keep_child.unwrap_or(&empty));
        }
    }
}

/// `.spec.containers[name="web"].image`, as printed in apply conflicts.
pub(crate) fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for p in path {
        if let Some(f) = p.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = p.strip_prefix("k:") {
            let key: BTreeMap<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = p.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        } else if let Some(i) = p.strip_prefix("i:") {
            out.push_str(&format!("[{i}]"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn builtin_container_lists_are_keyed() {
        let r = TypeRules::Builtin;
        assert_eq!(
            r.list_type(&p(&["spec", "template", "spec", "containers"])),
            ListType::Map(p(&["name"]))
        );
        assert_eq!(
            r.list_type(&p(&[
                "spec",
                "template",
                "spec",
                "containers",
                ITEM,
                "ports"
            ])),
            ListType::Map(p(&["containerPort", "protocol"]))
        );
        assert_eq!(
            r.list_type(&p(&["spec", "ports"])),
            ListType::Map(p(&["port", "protocol"]))
        );
        assert_eq!(r.list_type(&p(&["metadata", "finalizers"])), ListType::Set);
        assert_eq!(r.list_type(&p(&["spec", "tolerations"])), ListType::Atomic);
        assert_eq!(r.list_type(&p(&["spec", "metrics"])), ListType::Atomic);
    }

    #[test]
    fn schema_list_types_come_from_extensions() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object"}},
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "raw": {"type": "array", "items": {"type": "string"}}}}}});
        let r = TypeRules::Schema(Arc::new(schema));
        assert_eq!(
            r.list_type(&p(&["spec", "ports"])),
            ListType::Map(p(&["name"]))
        );
        assert_eq!(r.list_type(&p(&["spec", "tags"])), ListType::Set);
        assert_eq!(r.list_type(&p(&["spec", "raw"])), ListType::Atomic);
        assert_eq!(r.list_type(&p(&["metadata", "finalizers"])), ListType::Set);
    }

    #[test]
    fn field_set_of_a_deployment_matches_the_real_format() {
        let v = json!({"spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
            "template": {"spec": {"containers": [{"name": "web", "image": "nginx",
                "ports": [{"containerPort": 80}]}]}}}});
        let fs = FieldSet::from_value(&v, &TypeRules::Builtin);
        assert_eq!(
            fs.to_fields_v1(),
            json!({"f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}, "f:ports": {
                    "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}}}}}})
        );
        assert_eq!(FieldSet::from_fields_v1(&fs.to_fields_v1()), fs);
    }

    #[test]
    fn set_operations() {
        let a = FieldSet::from_value(&json!({"a": 1, "b": {"c": 1, "d": 2}}), &TypeRules::Builtin);
        let b = FieldSet::from_value(&json!({"b": {"c": 5}}), &TypeRules::Builtin);
        assert_eq!(
            a.difference(&b).to_fields_v1(),
            json!({"f:a": {}, "f:b": {"f:d": {}}})
        );
        assert_eq!(
            a.intersection(&b).to_fields_v1(),
            json!({"f:b": {"f:c": {}}})
        );
        assert_eq!(b.union(&a), a);
    }

    #[test]
    fn remove_fields_keeps_items_other_managers_still_own() {
        let mut v = json!({"spec": {"containers": [{"name": "a", "image": "x", "args": ["1"]}, {"name": "b"}]}});
        let rules = TypeRules::Builtin;
        let mut remove = FieldSet::default();
        remove.insert(&p(&["f:spec", "f:containers", "k:{\"name\":\"a\"}"]));
        remove.insert(&p(&["f:spec", "f:containers", "k:{\"name\":\"b\"}"]));
        let mut keep = FieldSet::default();
        keep.insert(&p(&[
            "f:spec",
            "f:containers",
            "k:{\"name\":\"a\"}",
            "f:args",
        ]));
        remove_fields(&mut v, &remove, &keep);
        assert_eq!(
            v,
            json!({"spec": {"containers": [{"name": "a", "image": "x", "args": ["1"]}]}})
        );
        let _ = rules;
    }

    #[test]
    fn display_path_prints_keys() {
        assert_eq!(
            display_path(&p(&[
                "f:spec",
                "f:containers",
                "k:{\"name\":\"web\"}",
                "f:image"
            ])),
            ".spec.containers[name=\"web\"].image"
        );
    }
}
