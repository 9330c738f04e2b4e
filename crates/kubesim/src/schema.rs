//! Structural-schema handling for custom resources: pruning of unknown
//! fields, defaulting, OpenAPI validation and `x-kubernetes-validations` CEL
//! rules (through `kube_cel`). Pure functions.

use serde_json::{Map, Value};

use crate::error::Cause;
use crate::fieldset::{ListType, TypeRules, item_key};
use std::sync::Arc;

/// Root fields that the user schema never prunes or validates.
const ROOT_META: &[&str] = &["apiVersion", "kind", "metadata"];

/// Removes fields the schema does not declare (unless
/// `x-kubernetes-preserve-unknown-fields`), like the real server does silently.
pub(crate) fn prune(value: &mut Value, schema: &Value) {
    prune_node(value, schema, true);
}

fn prune_node(value: &mut Value, schema: &Value, root: bool) {
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    if flag(schema, "x-kubernetes-int-or-string") {
        return;
    }
    match value {
        Value::Object(obj) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let embedded = flag(schema, "x-kubernetes-embedded-resource");
            let keys: Vec<String> = obj.keys().cloned().collect();
            for k in keys {
                if (root || embedded) && ROOT_META.contains(&k.as_str()) {
                    continue;
                }
                let child_schema = props.and_then(|p| p.get(&k)).or(additional);
                match (child_schema, obj.get_mut(&k)) {
                    (Some(s), Some(v)) => prune_node(v, s, false),
                    (None, _) if !preserve => {
                        obj.remove(&k);
                    }
                    _ => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for i in items {
                    prune_node(i, s, false);
                }
            }
        }
        _ => {}
    }
}

/// Applies `default`s from the schema to absent (or `null` non-nullable) fields.
pub(crate) fn apply_defaults(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(obj) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, s) in props {
                    let absent = match obj.get(k) {
                        None => true,
                        Some(Value::Null) => !flag(s, "nullable"),
                        Some(_) => false,
                    };
                    if absent && let Some(d) = s.get("default") {
                        obj.insert(k.clone(), d.clone());
                    }
                    if let Some(child) = obj.get_mut(k) {
                        apply_defaults(child, s);
                    }
                }
            }
            if let Some(add) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                let declared = schema.get("properties").and_then(Value::as_object);
                for (k, v) in obj.iter_mut() {
                    if declared.is_none_or(|d| !d.contains_key(k)) {
                        apply_defaults(v, add);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                items.iter_mut().for_each(|i| apply_defaults(i, s));
            }
        }
        _ => {}
    }
}

/// Validates `value` against the schema, returning field causes.
pub(crate) fn validate(value: &Value, schema: &Value) -> Vec<Cause> {
    let mut errors = Vec::new();
    let rules = TypeRules::Schema(Arc::new(schema.clone()));
    validate_node(
        value,
        schema,
        "",
        true,
        &rules,
        &mut Vec::new(),
        &mut errors,
    );
    errors
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// The JSON type name used in messages (`"string"`, `"integer"`, ...).
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// How Go prints a value in `Invalid value: ...`.
fn go_value(v: &Value) -> String {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => v.to_string(),
        Value::Null => "null".into(),
        _ => format!("\"{}\"", type_name(v)),
    }
}

fn invalid(field: &str, value: &Value, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {}: {detail}", go_value(value)),
        field: field.into(),
    }
}

#[allow(clippy::too_many_arguments)]
fn validate_node(
    value: &Value,
    schema: &Value,
    path: &str,
    root: bool,
    rules: &TypeRules,
    type_path: &mut Vec<String>,
    errors: &mut Vec<Cause>,
) {
    if value.is_null() {
        if !flag(schema, "nullable") && !root {
            let ty = schema
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("object");
            errors.push(invalid(
                path,
                &Value::String("null".into()),
                &format!("{path} in body must be of type {ty}: \"null\""),
            ));
        }
        return;
    }
    let int_or_string = flag(schema, "x-kubernetes-int-or-string");
    if int_or_string {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            errors.push(invalid(
                path,
                &Value::String(type_name(value).into()),
                &format!(
                    "{path} in body must be of type integer,string: \"{}\"",
                    type_name(value)
                ),
            ));
        }
        return;
    }
    if let Some(ty) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(value);
        let ok = match ty {
            "number" => value.is_number(),
            "integer" => {
                value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            other => actual == other,
        };
        if !ok {
            errors.push(invalid(
                path,
                &Value::String(actual.into()),
                &format!("{path} in body must be of type {ty}: \"{actual}\""),
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
        errors.push(Cause {
            reason: "FieldValueNotSupported".into(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                value,
                list.join(", ")
            ),
            field: path.into(),
        });
    }
    if let Some(n) = value.as_f64() {
        validate_number(value, n, schema, path, errors);
    }
    if let Some(s) = value.as_str() {
        validate_string(value, s, schema, path, errors);
    }
    match value {
        Value::Object(obj) => validate_object(obj, schema, path, root, rules, type_path, errors),
        Value::Array(items) => {
            let len = items.len() as u64;
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && len > max
            {
                errors.push(Cause {
                    reason: "FieldValueTooMany".into(),
                    message: format!("Too many: {len}: must have at most {max} items"),
                    field: path.into(),
                });
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && len < min
            {
                errors.push(invalid(
                    path,
                    value,
                    &format!("{path} in body should have at least {min} items"),
                ));
            }
            if rules.list_type(type_path) == ListType::Set {
                for (i, item) in items.iter().enumerate() {
                    if items[..i].contains(item) {
                        errors.push(Cause {
                            reason: "FieldValueDuplicate".into(),
                            message: format!("Duplicate value: {}", go_value(item)),
                            field: format!("{path}[{i}]"),
                        });
                    }
                }
            }
            if let ListType::Map(keys) = rules.list_type(type_path) {
                let mut seen = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    if let Some(k) = item_key(item, &keys) {
                        if seen.contains(&k) {
                            let shown: Vec<String> =
                                k.iter().map(|(n, v)| format!("\"{n}\":{v}")).collect();
                            errors.push(Cause {
                                reason: "FieldValueDuplicate".into(),
                                message: format!(
                                    "Duplicate value: map[string]interface {{}}{{{}}}",
                                    shown.join(", ")
                                ),
                                field: format!("{path}[{i}]"),
                            });
                        }
                        seen.push(k);
                    }
                }
            }
            if let Some(s) = schema.get("items") {
                type_path.push(crate::fieldset::ITEM.to_string());
                for (i, item) in items.iter().enumerate() {
                    validate_node(
                        item,
                        s,
                        &format!("{path}[{i}]"),
                        false,
                        rules,
                        type_path,
                        errors,
                    );
                }
                type_path.pop();
            }
        }
        _ => {}
    }
}

fn validate_number(value: &Value, n: f64, schema: &Value, path: &str, errors: &mut Vec<Cause>) {
    let num = |k: &str| schema.get(k).and_then(Value::as_f64);
    if let Some(min) = num("minimum") {
        let excl = flag(schema, "exclusiveMinimum");
        if (excl && n <= min) || (!excl && n < min) {
            let rel = if excl {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errors.push(invalid(
                path,
                value,
                &format!("{path} in body should be {rel} {}", fmt_num(min)),
            ));
        }
    }
    if let Some(max) = num("maximum") {
        let excl = flag(schema, "exclusiveMaximum");
        if (excl && n >= max) || (!excl && n > max) {
            let rel = if excl {
                "less than"
            } else {
                "less than or equal to"
            };
            errors.push(invalid(
                path,
                value,
                &format!("{path} in body should be {rel} {}", fmt_num(max)),
            ));
        }
    }
    if let Some(m) = num("multipleOf")
        && m != 0.0
        && (n / m).fract() != 0.0
    {
        errors.push(invalid(
            path,
            value,
            &format!("{path} in body should be a multiple of {}", fmt_num(m)),
        ));
    }
    let range = match schema.get("format").and_then(Value::as_str) {
        Some("int32") => Some((i32::MIN as f64, i32::MAX as f64)),
        Some("int64") => Some((i64::MIN as f64, i64::MAX as f64)),
        _ => None,
    };
    if let Some((lo, hi)) = range
        && (n < lo || n > hi)
    {
        let f = schema.get("format").and_then(Value::as_str).unwrap_or("");
        errors.push(invalid(
            path,
            value,
            &format!("{path} in body must be of type {f}: \"{}\"", fmt_num(n)),
        ));
    }
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

fn validate_string(value: &Value, s: &str, schema: &Value, path: &str, errors: &mut Vec<Cause>) {
    let len = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        errors.push(Cause {
            reason: "FieldValueTooLong".into(),
            message: format!("Too long: may not be more than {max} bytes"),
            field: path.into(),
        });
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        errors.push(invalid(
            path,
            value,
            &format!("{path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match regex::Regex::new(pattern) {
            Ok(re) if !re.is_match(s) => {
                errors.push(invalid(
                    path,
                    value,
                    &format!("{path} in body should match '{pattern}'"),
                ));
            }
            Ok(_) => {}
            Err(e) => errors.push(invalid(
                path,
                value,
                &format!("invalid pattern {pattern:?}: {e}"),
            )),
        }
    }
    if let Some(format) = schema.get("format").and_then(Value::as_str) {
        let ok = match format {
            "date-time" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
            "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
            _ => true,
        };
        if !ok {
            errors.push(invalid(
                path,
                value,
                &format!("{path} in body must be of type {format}: {value}"),
            ));
        }
    }
}

fn validate_object(
    obj: &Map<String, Value>,
    schema: &Value,
    path: &str,
    root: bool,
    rules: &TypeRules,
    type_path: &mut Vec<String>,
    errors: &mut Vec<Cause>,
) {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if obj.get(r).is_none_or(Value::is_null) {
                errors.push(Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value".into(),
                    field: join(path, r),
                });
            }
        }
    }
    let count = obj.len() as u64;
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && count > max
    {
        errors.push(Cause {
            reason: "FieldValueTooMany".into(),
            message: format!("Too many: {count}: must have at most {max} items"),
            field: path.into(),
        });
    }
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
        && count < min
    {
        errors.push(invalid(
            path,
            &Value::Object(obj.clone()),
            &format!("{path} in body should have at least {min} properties"),
        ));
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    // Field by field in name order, whatever order the map keeps (serde_json
    // keeps insertion order when a dependency enables `preserve_order`).
    let mut fields: Vec<(&String, &Value)> = obj.iter().collect();
    fields.sort_by_key(|(k, _)| *k);
    for (k, v) in fields {
        if root && ROOT_META.contains(&k.as_str()) {
            continue;
        }
        if let Some(s) = props.and_then(|p| p.get(k)).or(additional) {
            type_path.push(k.clone());
            validate_node(v, s, &join(path, k), false, rules, type_path, errors);
            type_path.pop();
        }
    }
}

thread_local! {
    /// Registering the CEL function library is not free; keep one per thread.
    static VALIDATOR: kube_cel::Validator = kube_cel::Validator::new();
}

/// Evaluates the `x-kubernetes-validations` CEL rules (transition rules see `old`).
pub(crate) fn validate_cel(
    value: &Value,
    old: Option<&Value>,
    schema: &Value,
    api_version: &str,
    kind: &str,
) -> Vec<Cause> {
    let ctx = kube_cel::RootContext {
        api_version: api_version.to_string(),
        api_group: crate::resource::split_api_version(api_version)
            .0
            .to_string(),
        kind: kind.to_string(),
    };
    let result = VALIDATOR.with(|v| v.validate_with_context(schema, value, old, Some(&ctx)));
    match result {
        Ok(()) => Vec::new(),
        Err(errs) => errs
            .into_iter()
            .map(|e| {
                let at = field_value(value, &e.field_path);
                let ty = at.map(type_name).unwrap_or("object");
                let reason = e
                    .reason
                    .clone()
                    .unwrap_or_else(|| "FieldValueInvalid".into());
                let message = match reason.as_str() {
                    "FieldValueForbidden" => format!("Forbidden: {}", e.message),
                    "FieldValueRequired" => format!("Required value: {}", e.message),
                    "FieldValueDuplicate" => format!("Duplicate value: \"{ty}\": {}", e.message),
                    _ => format!("Invalid value: \"{ty}\": {}", e.message),
                };
                Cause {
                    reason,
                    message,
                    field: e.field_path,
                }
            })
            .collect(),
    }
}

/// Looks up a `spec.items[0].name`-style path.
fn field_value<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = value;
    if path.is_empty() {
        return Some(cur);
    }
    for seg in path.split('.') {
        let (name, rest) = match seg.find('[') {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (seg, ""),
        };
        if !name.is_empty() {
            cur = cur.get(name)?;
        }
        for idx in rest.split(['[', ']']).filter(|s| !s.is_empty()) {
            cur = cur.get(idx.parse::<usize>().ok()?)?;
        }
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
        "spec": {"type": "object", "required": ["size"], "properties": {
            "size": {"type": "integer", "minimum": 1, "maximum": 10, "format": "int32"},
            "color": {"type": "string", "enum": ["red", "green"], "default": "red"},
            "name": {"type": "string", "maxLength": 5, "pattern": "^[a-z]+$"},
            "port": {"x-kubernetes-int-or-string": true},
            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "region": {"type": "string", "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "region is immutable"}]}
        }}}})
    }

    #[test]
    fn prune_drops_unknown_fields_but_keeps_preserved_ones() {
        let mut v = json!({"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "a"},
            "spec": {"size": 1, "bogus": true, "extra": {"anything": 1}}, "junk": 1});
        prune(&mut v, &schema());
        assert_eq!(
            v,
            json!({"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "a"},
            "spec": {"size": 1, "extra": {"anything": 1}}})
        );
    }

    #[test]
    fn defaults_fill_absent_fields() {
        let mut v = json!({"spec": {"size": 1}});
        apply_defaults(&mut v, &schema());
        assert_eq!(v["spec"]["color"], "red");
    }

    #[test]
    fn validation_messages_match_the_real_server() {
        let v = json!({"spec": {"size": 20, "color": "blue", "name": "TOOLONGNAME", "port": 1.5}});
        let errs = validate(&v, &schema());
        let rendered: Vec<String> = errs
            .iter()
            .map(|c| format!("{}: {} ({})", c.field, c.message, c.reason))
            .collect();
        assert_eq!(
            rendered,
            vec![
                "spec.color: Unsupported value: \"blue\": supported values: \"red\", \"green\" (FieldValueNotSupported)",
                "spec.name: Too long: may not be more than 5 bytes (FieldValueTooLong)",
                "spec.name: Invalid value: \"TOOLONGNAME\": spec.name in body should match '^[a-z]+$' (FieldValueInvalid)",
                "spec.port: Invalid value: \"number\": spec.port in body must be of type integer,string: \"number\" (FieldValueInvalid)",
                "spec.size: Invalid value: 20: spec.size in body should be less than or equal to 10 (FieldValueInvalid)",
            ]
        );
        let missing = validate(&json!({"spec": {}}), &schema());
        assert_eq!(missing[0].field, "spec.size");
        assert_eq!(missing[0].reason, "FieldValueRequired");
        let wrong_type = validate(&json!({"spec": {"size": "x"}}), &schema());
        assert_eq!(
            wrong_type[0].message,
            "Invalid value: \"string\": spec.size in body must be of type integer: \"string\""
        );
    }

    #[test]
    fn a_set_list_with_a_duplicate_is_rejected_like_the_real_server() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "regions": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
        }}}});
        let errors = validate(&json!({"spec": {"regions": ["a", "b", "a"]}}), &schema);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].reason, "FieldValueDuplicate");
        assert_eq!(errors[0].field, "spec.regions[2]");
        assert_eq!(errors[0].message, "Duplicate value: \"a\"");
        assert!(validate(&json!({"spec": {"regions": ["a", "b"]}}), &schema).is_empty());
    }

    #[test]
    fn cel_transition_rule_sees_old_self() {
        let old = json!({"spec": {"size": 1, "region": "eu"}});
        let new = json!({"spec": {"size": 1, "region": "us"}});
        assert!(validate_cel(&new, None, &schema(), "x/v1", "W").is_empty());
        let errs = validate_cel(&new, Some(&old), &schema(), "x/v1", "W");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.region");
        assert_eq!(
            errs[0].message,
            "Invalid value: \"string\": region is immutable"
        );
    }

    #[test]
    fn field_value_follows_indexes() {
        let v = json!({"spec": {"items": [{"name": "a"}]}});
        assert_eq!(field_value(&v, "spec.items[0].name"), Some(&json!("a")));
    }
}
