//! Structural-schema handling for custom resources: pruning of unknown
//! fields, defaulting, OpenAPI validation and `x-kubernetes-validations` CEL
//! rules (through `kube_cel`). Pure functions.

use serde_json::{Map, Value};

use crate::error::Cause;
use crate::gofmt::{GoNumber, go_float, go_json, go_number, go_quote, go_value};

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

/// Applies `default`s from the schema to absent (or `null` non-nullable)
/// fields, then drops the `null`s left in non-nullable fields, as the real
/// server does while decoding (structural defaulting, then
/// `PruneNonNullableNullsWithoutDefaults`): a `null` field is never a type
/// error there (only a `null` list item is).
pub(crate) fn apply_defaults(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(obj) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            if let Some(props) = props {
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
            if let Some(add) = additional {
                for (k, v) in obj.iter_mut() {
                    if props.is_none_or(|d| !d.contains_key(k)) {
                        apply_defaults(v, add);
                    }
                }
            }
            obj.retain(|k, v| {
                let field_schema = props.and_then(|p| p.get(k)).or(additional);
                !v.is_null() || field_schema.is_none_or(|s| flag(s, "nullable"))
            });
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                items.iter_mut().for_each(|i| apply_defaults(i, s));
            }
        }
        _ => {}
    }
}

/// Validates `value` against the schema the way the real server does: the
/// OpenAPI validator (kube-openapi), then the `x-kubernetes-list-type`
/// check. Within one field the causes come in the real order; sibling
/// fields are visited by name (the real server visits them in Go map order,
/// which is random).
pub(crate) fn validate(value: &Value, schema: &Value) -> Vec<Cause> {
    let mut errors = Vec::new();
    validate_node(value, schema, "", true, &mut errors);
    validate_list_types(value, schema, "", true, &mut errors);
    errors
}

/// Whether the schema has any `x-kubernetes-validations` rule. Without one
/// the real server has no CEL validator, and so never reports that rules
/// went unchecked.
pub(crate) fn has_cel_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => map.iter().any(|(k, v)| {
            (k == "x-kubernetes-validations" && v.as_array().is_some_and(|a| !a.is_empty()))
                || has_cel_rules(v)
        }),
        Value::Array(items) => items.iter().any(has_cel_rules),
        _ => false,
    }
}

/// Whether a structural error stops the CEL rules from being evaluated
/// (the real server's `hasBlockingErr`: an unsupported enum value, a missing
/// required field, a too long string, too many items or a wrong type).
pub(crate) fn blocks_cel(cause: &Cause) -> bool {
    matches!(
        cause.reason.as_str(),
        "FieldValueNotSupported"
            | "FieldValueRequired"
            | "FieldValueTooLong"
            | "FieldValueTooMany"
            | "FieldValueTypeInvalid"
    )
}

/// The field-less cause the real server adds instead of the CEL rules' results
/// when a blocking structural error was found.
pub(crate) fn cel_not_checked() -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: "Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".into(),
        field: NIL_FIELD.into(),
    }
}

/// How Go prints a nil field path; the real server uses it as the `field`
/// of causes that have none.
const NIL_FIELD: &str = "<nil>";

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

/// kube-openapi's `schemaInfoForType`: the JSON type and the Go-derived format
/// of a decoded value (`int64` for integers, `float64` for other numbers).
fn go_schema_info(v: &Value) -> (&'static str, &'static str) {
    match v {
        Value::Null => ("null", ""),
        Value::Bool(_) => ("boolean", ""),
        Value::Number(_) => match go_number(v) {
            Some(GoNumber::Int(_)) => ("integer", "int64"),
            _ => ("number", "float64"),
        },
        Value::String(_) => ("string", ""),
        Value::Array(_) => ("array", ""),
        Value::Object(_) => ("object", ""),
    }
}

/// go-openapi's `IsFloat64AJSONInteger`: a whole number within ±2^53.
fn is_json_integer(f: f64) -> bool {
    const MAX: f64 = 9_007_199_254_740_992.0;
    f.is_finite() && f.fract() == 0.0 && f.abs() <= MAX
}

fn cause(reason: &str, field: &str, message: String) -> Cause {
    Cause {
        reason: reason.into(),
        message,
        field: field.into(),
    }
}

/// `field.Invalid(path, value, detail)`.
fn invalid(field: &str, value: &Value, detail: &str) -> Cause {
    cause(
        "FieldValueInvalid",
        field,
        format!("Invalid value: {}: {detail}", go_value(value)),
    )
}

/// `field.TypeInvalid` from kube-openapi's `InvalidType`: the bad value is
/// the actual type (or format) name, or the string itself for a format error.
fn type_invalid(path: &str, expected: &str, actual: &str) -> Cause {
    let actual = go_quote(actual);
    cause(
        "FieldValueTypeInvalid",
        path,
        format!("Invalid value: {actual}: {path} in body must be of type {expected}: {actual}"),
    )
}

fn validate_node(value: &Value, schema: &Value, path: &str, root: bool, errors: &mut Vec<Cause>) {
    let int_or_string = flag(schema, "x-kubernetes-int-or-string");
    let types: Vec<&str> = if int_or_string {
        vec!["integer", "string"]
    } else {
        schema
            .get("type")
            .and_then(Value::as_str)
            .into_iter()
            .collect()
    };
    let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
    if value.is_null() {
        // Only list items (and nullable fields) are still null here: the type
        // validator and the enum check see them, nothing else.
        if !root && !types.is_empty() && !flag(schema, "nullable") {
            errors.push(type_invalid(path, &types.join(","), "null"));
        }
        check_enum(value, schema, path, errors);
        return;
    }
    check_type(value, &types, format, path, errors);
    if let Some(s) = value.as_str() {
        check_string(value, s, schema, path, errors);
        check_format(s, format, path, errors);
    }
    if let Some(n) = go_number(value) {
        let ty = if int_or_string {
            ""
        } else {
            types.first().copied().unwrap_or("")
        };
        check_number(value, n, ty, format, schema, path, errors);
    }
    if let Value::Array(items) = value {
        if let Some(s) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                validate_node(item, s, &format!("{path}[{i}]"), false, errors);
            }
        }
        let len = items.len() as u64;
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && len < min
        {
            errors.push(invalid(
                path,
                &Value::from(len),
                &format!("{path} in body should have at least {min} items"),
            ));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && len > max
        {
            errors.push(cause(
                "FieldValueTooMany",
                path,
                format!("Too many: {len}: must have at most {max} items"),
            ));
        }
    }
    check_enum(value, schema, path, errors);
    if let Value::Object(obj) = value {
        validate_object(obj, schema, path, root, errors);
    }
}

/// kube-openapi's type validator.
fn check_type(value: &Value, types: &[&str], format: &str, path: &str, errors: &mut Vec<Cause>) {
    if types.is_empty() && format.is_empty() {
        return;
    }
    let (sch_type, data_format) = go_schema_info(value);
    let contains = |t: &str| types.contains(&t);
    let is_float_int =
        sch_type == "number" && value.as_f64().is_some_and(is_json_integer) && contains("integer");
    let is_int_float = sch_type == "integer" && contains("number");
    let stringy = value.is_string() || value.is_array();
    // A format mismatch on a non-string, non-list value (Go: `kind !=
    // String && kind != Slice && Format != "" && !(...)`).
    let format_mismatch = !(stringy
        || format.is_empty()
        || contains(sch_type)
        || data_format == format
        || is_float_int
        || is_int_float);
    if format_mismatch {
        errors.push(type_invalid(path, format, data_format));
        return;
    }
    // A string or list with a format, for a non-numeric type: the format
    // validator's business.
    if stringy && !format.is_empty() && !(contains("number") || contains("integer")) {
        return;
    }
    if !(contains(sch_type) || is_float_int || is_int_float) {
        errors.push(type_invalid(path, &types.join(","), sch_type));
    }
}

/// kube-openapi's string validator: only the first failing constraint.
fn check_string(value: &Value, s: &str, schema: &Value, path: &str, errors: &mut Vec<Cause>) {
    let len = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        errors.push(cause(
            "FieldValueTooLong",
            path,
            format!("Too long: may not be more than {max} bytes"),
        ));
        return;
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        errors.push(invalid(
            path,
            value,
            &format!("{path} in body should be at least {min} chars long"),
        ));
        return;
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match regex::Regex::new(pattern) {
            Ok(re) if !re.is_match(s) => errors.push(invalid(
                path,
                value,
                &format!("{path} in body should match '{pattern}'"),
            )),
            Ok(_) => {}
            Err(e) => errors.push(invalid(
                path,
                value,
                &format!("{path} in body should match '{pattern}, but pattern is invalid: {e}'"),
            )),
        }
    }
}

/// kube-openapi's format validator (for the formats kubesim knows).
fn check_format(s: &str, format: &str, path: &str, errors: &mut Vec<Cause>) {
    let ok = match format {
        "date-time" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        _ => true,
    };
    if !ok {
        errors.push(type_invalid(path, format, s));
    }
}

/// kube-openapi's `IsValueValidAgainstRange`: can the number be converted to
/// the schema's integer format (or `float`) without loss?
fn range_error(n: GoNumber, ty: &str, format: &str, prefix: &str, path: &str) -> Option<String> {
    let rep = match n {
        GoNumber::Int(i) => i.to_string(),
        GoNumber::Float(f) => format!("{f}"),
    };
    let ok = match ty {
        "integer" => match format {
            "int32" => rep.parse::<i32>().is_ok(),
            "uint32" => rep.parse::<u32>().is_ok(),
            "uint64" => rep.parse::<u64>().is_ok(),
            _ => rep.parse::<i64>().is_ok(),
        },
        _ => match format {
            "float" | "float32" => rep.parse::<f32>().is_ok_and(f32::is_finite),
            _ => true,
        },
    };
    if ok {
        None
    } else if format.is_empty() {
        Some(format!(
            "{prefix} value must be of type {ty} (default format) in {path}"
        ))
    } else {
        Some(format!(
            "{prefix} value must be of type {ty} with format {format} in {path}"
        ))
    }
}

/// kube-openapi's number validator: range of the format, then multipleOf,
/// minimum, maximum. Integers are compared with integer bounds (truncated),
/// other numbers with float bounds; bounds print like Go's `%v`.
fn check_number(
    value: &Value,
    n: GoNumber,
    ty: &str,
    format: &str,
    schema: &Value,
    path: &str,
    errors: &mut Vec<Cause>,
) {
    if let Some(msg) = range_error(n, ty, format, "Checked", path) {
        errors.push(cause(
            "FieldValueInvalid",
            NIL_FIELD,
            format!("Invalid value: \"\": {msg}"),
        ));
    }
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    // An integer value meets an integer bound when the bound itself fits the format.
    let int_bound = |b: f64| match n {
        GoNumber::Int(i) if range_error(GoNumber::Float(b), ty, format, "", path).is_none() => {
            Some((i, b as i64))
        }
        _ => None,
    };
    let data = n.as_f64();
    if let Some(m) = bound("multipleOf") {
        let failed = match int_bound(m) {
            // An integer meets the factor truncated to an integer, which
            // kube-openapi refuses when it is not positive (e.g. 0.5 → 0).
            Some((_, f)) if f <= 0 => {
                errors.push(invalid(
                    path,
                    &Value::from(f),
                    &format!("factor MultipleOf declared for {path} must be positive: {f}"),
                ));
                None
            }
            Some((i, f)) => (i % f != 0).then(|| f.to_string()),
            _ => {
                let mult = if m < 1.0 { 1.0 / m * data } else { data / m };
                (m >= 0.0 && !is_json_integer(mult)).then(|| go_float(m))
            }
        };
        if let Some(f) = failed {
            errors.push(invalid(
                path,
                value,
                &format!("{path} in body should be a multiple of {f}"),
            ));
        }
    }
    if let Some(min) = bound("minimum") {
        let excl = flag(schema, "exclusiveMinimum");
        let rel = if excl {
            "greater than"
        } else {
            "greater than or equal to"
        };
        let failed = match int_bound(min) {
            Some((i, b)) => ((excl && i <= b) || (!excl && i < b)).then(|| b.to_string()),
            None => ((excl && data <= min) || (!excl && data < min)).then(|| go_float(min)),
        };
        if let Some(b) = failed {
            errors.push(invalid(
                path,
                value,
                &format!("{path} in body should be {rel} {b}"),
            ));
        }
    }
    if let Some(max) = bound("maximum") {
        let excl = flag(schema, "exclusiveMaximum");
        let rel = if excl {
            "less than"
        } else {
            "less than or equal to"
        };
        let failed = match int_bound(max) {
            Some((i, b)) => ((excl && i >= b) || (!excl && i > b)).then(|| b.to_string()),
            None => ((excl && data >= max) || (!excl && data > max)).then(|| go_float(max)),
        };
        if let Some(b) = failed {
            errors.push(invalid(
                path,
                value,
                &format!("{path} in body should be {rel} {b}"),
            ));
        }
    }
}

/// kube-openapi's enum check, reported as `field.NotSupported` with the
/// allowed values quoted (non-strings as JSON).
fn check_enum(value: &Value, schema: &Value, path: &str, errors: &mut Vec<Cause>) {
    let Some(allowed) = schema.get("enum").and_then(Value::as_array) else {
        return;
    };
    let same = |e: &Value| match (go_number(value), go_number(e)) {
        (Some(a), Some(b)) => a.as_f64() == b.as_f64(),
        _ => e == value,
    };
    if allowed.is_empty() || allowed.iter().any(same) {
        return;
    }
    let list: Vec<String> = allowed
        .iter()
        .map(|e| match e {
            Value::String(s) => go_quote(s),
            other => go_quote(&go_json(other)),
        })
        .collect();
    errors.push(cause(
        "FieldValueNotSupported",
        path,
        format!(
            "Unsupported value: {}: supported values: {}",
            go_value(value),
            list.join(", ")
        ),
    ));
}

/// kube-openapi's object validator: property counts, then the fields
/// (additional ones, then declared ones), then the required fields in the
/// schema's order.
fn validate_object(
    obj: &Map<String, Value>,
    schema: &Value,
    path: &str,
    root: bool,
    errors: &mut Vec<Cause>,
) {
    let count = obj.len() as u64;
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
        && count < min
    {
        errors.push(invalid(
            path,
            &Value::from(count),
            &format!("{path} in body should have at least {min} properties"),
        ));
    }
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && count > max
    {
        errors.push(cause(
            "FieldValueTooMany",
            path,
            format!("Too many: {count}: must have at most {max} items"),
        ));
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (k, v, s) in fields(obj, props, additional, root) {
        validate_node(v, s, &join(path, k), false, errors);
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if obj.get(r).is_none_or(Value::is_null) {
                errors.push(cause(
                    "FieldValueRequired",
                    &join(path, r),
                    "Required value".into(),
                ));
            }
        }
    }
}

/// The fields of an object with their schemas: the ones only
/// `additionalProperties` describes, then the declared ones, each by name
/// (whatever order the map keeps: serde_json keeps insertion order when a
/// dependency enables `preserve_order`).
fn fields<'a>(
    obj: &'a Map<String, Value>,
    props: Option<&'a Map<String, Value>>,
    additional: Option<&'a Value>,
    root: bool,
) -> Vec<(&'a String, &'a Value, &'a Value)> {
    let mut extra = Vec::new();
    let mut declared = Vec::new();
    for (k, v) in obj {
        if root && ROOT_META.contains(&k.as_str()) {
            continue;
        }
        match (props.and_then(|p| p.get(k)), additional) {
            (Some(s), _) => declared.push((k, v, s)),
            (None, Some(s)) => extra.push((k, v, s)),
            (None, None) => {}
        }
    }
    extra.sort_by_key(|(k, _, _)| *k);
    declared.sort_by_key(|(k, _, _)| *k);
    extra.extend(declared);
    extra
}

/// The real server's `x-kubernetes-list-type` check, run after the OpenAPI
/// validation: in a `set`, the second occurrence of each value is a
/// duplicate; in a `map`, every item must be an object and the second item
/// with the same keys is a duplicate (shown as the keys as JSON).
fn validate_list_types(
    value: &Value,
    schema: &Value,
    path: &str,
    root: bool,
    errors: &mut Vec<Cause>,
) {
    match value {
        Value::Object(obj) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, v, s) in fields(obj, props, additional, root) {
                let declared = props.is_some_and(|p| p.contains_key(k));
                let child = if declared {
                    join(path, k)
                } else {
                    format!("{path}[{k}]")
                };
                validate_list_types(v, s, &child, false, errors);
            }
        }
        Value::Array(items) => {
            match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => {
                    let mut seen: Vec<(String, usize)> = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        let key = set_key(item);
                        match seen.iter_mut().find(|(k, _)| *k == key) {
                            Some((_, times)) => {
                                *times += 1;
                                if *times == 2 {
                                    errors.push(duplicate(&format!("{path}[{i}]"), item));
                                }
                            }
                            None => seen.push((key, 1)),
                        }
                    }
                }
                Some("map") => list_map_duplicates(items, schema, path, errors),
                _ => {}
            }
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_list_types(item, s, &format!("{path}[{i}]"), false, errors);
                }
            }
        }
        _ => {}
    }
}

/// Go compares set items as map keys: scalars by type and value, lists and
/// maps by their JSON.
fn set_key(item: &Value) -> String {
    match go_number(item) {
        Some(GoNumber::Int(i)) => format!("i{i}"),
        Some(GoNumber::Float(f)) => format!("f{f}"),
        None => go_json(item),
    }
}

fn duplicate(field: &str, value: &Value) -> Cause {
    cause(
        "FieldValueDuplicate",
        field,
        format!("Duplicate value: {}", go_value(value)),
    )
}

fn list_map_duplicates(items: &[Value], schema: &Value, path: &str, errors: &mut Vec<Cause>) {
    if let Some(i) = items.iter().position(|x| !x.is_null() && !x.is_object()) {
        errors.push(invalid(
            &format!("{path}[{i}]"),
            &items[i],
            "must be an object for an array of list-type map",
        ));
        return;
    }
    let keys: Vec<&str> = schema
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            continue;
        };
        // A missing key is Go's `unspecifiedKeyValue{}`, which marshals as `{}`.
        let shown: Map<String, Value> = keys
            .iter()
            .map(|k| {
                (
                    k.to_string(),
                    obj.get(*k)
                        .cloned()
                        .unwrap_or_else(|| Value::Object(Map::new())),
                )
            })
            .collect();
        let shown = Value::Object(shown);
        let key = keys
            .iter()
            .map(|k| {
                obj.get(*k)
                    .map(set_key)
                    .unwrap_or_else(|| "unspecified".into())
            })
            .collect::<Vec<_>>()
            .join("\u{0}");
        match seen.iter_mut().find(|(k, _)| *k == key) {
            Some((_, times)) => {
                *times += 1;
                if *times == 2 {
                    errors.push(duplicate(&format!("{path}[{i}]"), &shown));
                }
            }
            None => seen.push((key, 1)),
        }
    }
}

thread_local! {
    /// Registering the CEL function library is not free; keep one per thread.
    static VALIDATOR: kube_cel::Validator = kube_cel::Validator::new();
}

/// Evaluates the `x-kubernetes-validations` CEL rules (transition rules see
/// `old`), with the real server's messages: the bad value is the value of
/// `self` (the field that carries the rule, even with a `fieldPath`), left
/// out when it is an object or a list.
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
                let node = rule_node_path(schema, &e.rule, &e.field_path);
                let this = field_value(value, &node).unwrap_or(&Value::Null);
                let reason = e
                    .reason
                    .clone()
                    .unwrap_or_else(|| "FieldValueInvalid".into());
                let message = match reason.as_str() {
                    "FieldValueForbidden" => format!("Forbidden: {}", e.message),
                    "FieldValueRequired" => format!("Required value: {}", e.message),
                    "FieldValueDuplicate" => format!("Duplicate value: {}", go_value(this)),
                    _ if this.is_object() || this.is_array() => {
                        format!("Invalid value: {}", e.message)
                    }
                    _ => format!("Invalid value: {}: {}", go_value(this), e.message),
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

/// The path of the field that carries a failed rule: the error path, less
/// the rule's `fieldPath` when it has one.
fn rule_node_path(schema: &Value, rule: &str, error_path: &str) -> String {
    let mut field_paths = Vec::new();
    collect_rule_field_paths(schema, rule, &mut field_paths);
    for fp in field_paths {
        if error_path == fp {
            return String::new();
        }
        let suffix = if fp.starts_with('.') {
            fp.clone()
        } else {
            format!(".{fp}")
        };
        if let Some(base) = error_path.strip_suffix(&suffix) {
            return base.to_string();
        }
    }
    error_path.to_string()
}

fn collect_rule_field_paths(schema: &Value, rule: &str, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(rules) = map
                .get("x-kubernetes-validations")
                .and_then(Value::as_array)
            {
                for r in rules {
                    if r.get("rule").and_then(Value::as_str) == Some(rule)
                        && let Some(fp) = r.get("fieldPath").and_then(Value::as_str)
                    {
                        out.push(fp.to_string());
                    }
                }
            }
            map.values()
                .for_each(|v| collect_rule_field_paths(v, rule, out));
        }
        Value::Array(items) => items
            .iter()
            .for_each(|v| collect_rule_field_paths(v, rule, out)),
        _ => {}
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

    fn rendered(errs: &[Cause]) -> Vec<String> {
        errs.iter()
            .map(|c| format!("{}: {} ({})", c.field, c.message, c.reason))
            .collect()
    }

    #[test]
    fn validation_messages_match_the_real_server() {
        // Expected lines as a v1.36 kube-apiserver reported them for the same
        // schema and values (one cause list per field; the real order of
        // sibling fields is random, kubesim's is by name).
        let v = json!({"spec": {"size": 20, "color": "blue", "name": "TOOLONGNAME", "port": 1.5}});
        assert_eq!(
            rendered(&validate(&v, &schema())),
            vec![
                "spec.color: Unsupported value: \"blue\": supported values: \"red\", \"green\" (FieldValueNotSupported)",
                "spec.name: Too long: may not be more than 5 bytes (FieldValueTooLong)",
                "spec.port: Invalid value: \"number\": spec.port in body must be of type integer,string: \"number\" (FieldValueTypeInvalid)",
                "spec.size: Invalid value: 20: spec.size in body should be less than or equal to 10 (FieldValueInvalid)",
            ]
        );
        let missing = validate(&json!({"spec": {}}), &schema());
        assert_eq!(missing[0].field, "spec.size");
        assert_eq!(missing[0].reason, "FieldValueRequired");
        assert_eq!(
            rendered(&validate(&json!({"spec": {"size": "x"}}), &schema())),
            [
                "spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\" (FieldValueTypeInvalid)"
            ]
        );
    }

    #[test]
    fn integer_formats_are_range_checked_without_a_field_like_the_real_server() {
        assert_eq!(
            rendered(&validate(
                &json!({"spec": {"size": 3_000_000_000i64}}),
                &schema()
            )),
            [
                "<nil>: Invalid value: \"\": Checked value must be of type integer with format int32 in spec.size (FieldValueInvalid)",
                "spec.size: Invalid value: 3000000000: spec.size in body should be less than or equal to 10 (FieldValueInvalid)",
            ]
        );
        assert_eq!(
            rendered(&validate(&json!({"spec": {"size": 1.5}}), &schema())),
            [
                "spec.size: Invalid value: \"float64\": spec.size in body must be of type int32: \"float64\" (FieldValueTypeInvalid)",
                "<nil>: Invalid value: \"\": Checked value must be of type integer with format int32 in spec.size (FieldValueInvalid)",
            ]
        );
        assert_eq!(
            rendered(&validate(&json!({"spec": {"size": true}}), &schema())),
            [
                "spec.size: Invalid value: \"\": spec.size in body must be of type int32: \"\" (FieldValueTypeInvalid)"
            ]
        );
        assert!(validate(&json!({"spec": {"size": 2.0}}), &schema()).is_empty());
    }

    #[test]
    fn numbers_lists_and_objects_report_like_the_real_server() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "nums": {"type": "number", "minimum": 1.5, "maximum": 1_000_000, "multipleOf": 0.5},
            "ml": {"type": "array", "minItems": 2, "maxItems": 3, "items": {"type": "integer", "minimum": 0}},
            "mp": {"type": "object", "minProperties": 2, "required": ["z"],
                "properties": {"z": {"type": "string", "minLength": 3}}},
            "ie": {"type": "integer", "enum": [1, 2]},
            "dt": {"type": "string", "format": "date-time"}
        }}}});
        let check = |spec: Value, want: &[&str]| {
            assert_eq!(rendered(&validate(&json!({"spec": spec}), &schema)), want);
        };
        check(
            json!({"nums": 3e9}),
            &[
                "spec.nums: Invalid value: 3e+09: spec.nums in body should be less than or equal to 1e+06 (FieldValueInvalid)",
            ],
        );
        check(
            json!({"nums": 1.0}),
            &[
                "spec.nums: Invalid value: 1: spec.nums in body should be greater than or equal to 1.5 (FieldValueInvalid)",
            ],
        );
        check(
            json!({"nums": 2.25}),
            &[
                "spec.nums: Invalid value: 2.25: spec.nums in body should be a multiple of 0.5 (FieldValueInvalid)",
            ],
        );
        check(
            json!({"nums": 1e-7}),
            &[
                "spec.nums: Invalid value: 1e-07: spec.nums in body should be a multiple of 0.5 (FieldValueInvalid)",
                "spec.nums: Invalid value: 1e-07: spec.nums in body should be greater than or equal to 1.5 (FieldValueInvalid)",
            ],
        );
        check(
            json!({"ml": [-1]}),
            &[
                "spec.ml[0]: Invalid value: -1: spec.ml[0] in body should be greater than or equal to 0 (FieldValueInvalid)",
                "spec.ml: Invalid value: 1: spec.ml in body should have at least 2 items (FieldValueInvalid)",
            ],
        );
        check(
            json!({"ml": [1, 2, 3, 4]}),
            &["spec.ml: Too many: 4: must have at most 3 items (FieldValueTooMany)"],
        );
        check(
            json!({"mp": {"z": "a"}}),
            &[
                "spec.mp: Invalid value: 1: spec.mp in body should have at least 2 properties (FieldValueInvalid)",
                "spec.mp.z: Invalid value: \"a\": spec.mp.z in body should be at least 3 chars long (FieldValueInvalid)",
            ],
        );
        check(
            json!({"mp": {}}),
            &[
                "spec.mp: Invalid value: 0: spec.mp in body should have at least 2 properties (FieldValueInvalid)",
                "spec.mp.z: Required value (FieldValueRequired)",
            ],
        );
        check(
            json!({"ie": 3}),
            &[
                "spec.ie: Unsupported value: 3: supported values: \"1\", \"2\" (FieldValueNotSupported)",
            ],
        );
        check(json!({"ie": 1.0}), &[]);
        check(
            json!({"dt": "yesterday"}),
            &[
                "spec.dt: Invalid value: \"yesterday\": spec.dt in body must be of type date-time: \"yesterday\" (FieldValueTypeInvalid)",
            ],
        );
        check(
            json!({"dt": 5}),
            &[
                "spec.dt: Invalid value: \"int64\": spec.dt in body must be of type date-time: \"int64\" (FieldValueTypeInvalid)",
            ],
        );
    }

    #[test]
    fn nulls_are_dropped_or_defaulted_unless_nullable_like_the_real_server() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "color": {"type": "string", "default": "red"},
            "max": {"type": "integer"},
            "nb": {"type": "string", "nullable": true},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "tags": {"type": "array", "items": {"type": "string"}}
        }}}});
        let mut v = json!({"spec": {"color": null, "max": null, "nb": null, "labels": {"k": null}, "tags": ["a", null]}});
        apply_defaults(&mut v, &schema);
        assert_eq!(
            v,
            json!({"spec": {"color": "red", "nb": null, "labels": {}, "tags": ["a", null]}})
        );
        assert_eq!(
            rendered(&validate(&v, &schema)),
            [
                "spec.tags[1]: Invalid value: \"null\": spec.tags[1] in body must be of type string: \"null\" (FieldValueTypeInvalid)"
            ]
        );
    }

    #[test]
    fn list_map_duplicates_show_their_keys_as_json() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "mk": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["a", "b"],
                "items": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}},
            "tagz": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
        }}}});
        let errs = validate(
            &json!({"spec": {"mk": [{"a": "x", "b": 1}, {"a": "x", "b": 1}]}}),
            &schema,
        );
        assert_eq!(
            rendered(&errs),
            ["spec.mk[1]: Duplicate value: {\"a\":\"x\",\"b\":1} (FieldValueDuplicate)"]
        );
        let errs = validate(&json!({"spec": {"mk": [1]}}), &schema);
        assert_eq!(
            rendered(&errs),
            [
                "spec.mk[0]: Invalid value: \"integer\": spec.mk[0] in body must be of type object: \"integer\" (FieldValueTypeInvalid)",
                "spec.mk[0]: Invalid value: 1: must be an object for an array of list-type map (FieldValueInvalid)",
            ]
        );
        // Only the second occurrence of each value is reported.
        let errs = validate(
            &json!({"spec": {"tagz": ["a", "a", "a", "b", "b"]}}),
            &schema,
        );
        assert_eq!(
            rendered(&errs),
            [
                "spec.tagz[1]: Duplicate value: \"a\" (FieldValueDuplicate)",
                "spec.tagz[4]: Duplicate value: \"b\" (FieldValueDuplicate)",
            ]
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
            "Invalid value: \"us\": region is immutable"
        );
    }

    #[test]
    fn field_value_follows_indexes() {
        let v = json!({"spec": {"items": [{"name": "a"}]}});
        assert_eq!(field_value(&v, "spec.items[0].name"), Some(&json!("a")));
    }
}
