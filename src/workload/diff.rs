//! Does a child need an apply? Decided without writing, so that a converged
//! reconcile makes no request but GETs.
//!
//! Two checks, both needed:
//! - the `shopfleet.io/applied-hash` annotation: a hash of what we last
//!   applied. When the spec stops setting a field, the desired object is still
//!   a subset of the observed one; only the hash notices, and the apply then
//!   removes the field (server-side apply drops fields a manager stops
//!   sending).
//! - a *subset* comparison of the desired JSON against the observed JSON: it
//!   catches a hand edit (`kubectl edit`, `kubectl scale`) that left the hash
//!   annotation untouched, while ignoring what the API server adds (defaults,
//!   status, managedFields, other controllers' annotations).

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Annotation that holds [`applied_hash`] of the desired object.
pub const APPLIED_HASH_ANNOTATION: &str = "shopfleet.io/applied-hash";

/// True when `desired` must be applied: the object is absent, was applied from
/// a different desired state, or was changed by someone else.
pub fn needs_apply(desired: &Value, observed: Option<&Value>) -> bool {
    let Some(observed) = observed else {
        return true;
    };
    let wanted_hash = annotation(desired, APPLIED_HASH_ANNOTATION);
    if wanted_hash.is_some() && wanted_hash != annotation(observed, APPLIED_HASH_ANNOTATION) {
        return true;
    }
    !is_subset(desired, observed, &[])
}

/// SHA-256 (hex) of a desired object, leaving out the hash annotation itself
/// and `spec.replicas`. The Deployment's replicas follow the autoscaler inside
/// the bounds (the builder copies the observed value), so they must not make
/// the hash move; an out-of-bounds value is still caught by the subset check.
pub fn applied_hash(desired: &Value) -> String {
    let mut value = desired.clone();
    if let Some(annotations) = value
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(APPLIED_HASH_ANNOTATION);
        if annotations.is_empty() {
            value
                .pointer_mut("/metadata")
                .and_then(Value::as_object_mut)
                .map(|m| m.remove("annotations"));
        }
    }
    if let Some(spec) = value.pointer_mut("/spec").and_then(Value::as_object_mut) {
        spec.remove("replicas");
    }
    // serde_json keeps object keys sorted (no `preserve_order`), so the
    // encoding is canonical.
    let encoded = serde_json::to_vec(&value).expect("a JSON value always serialises");
    hex::encode(Sha256::digest(encoded))
}

fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.pointer("/metadata/annotations")?.get(key)?.as_str()
}

/// Is every field of `desired` present with an equal value in `observed`?
/// `path` holds the object keys leading here, for the quantity rule.
fn is_subset(desired: &Value, observed: &Value, path: &[&str]) -> bool {
    match (desired, observed) {
        (Value::Object(want), Value::Object(have)) => want.iter().all(|(key, want_value)| {
            let mut child_path = path.to_vec();
            child_path.push(key);
            match have.get(key) {
                Some(have_value) => is_subset(want_value, have_value, &child_path),
                // The API server omits what Go encodes as empty: nulls,
                // empty collections and the zero values of `omitempty`
                // fields (an env var's `value: ""`, `readOnly: false`).
                None => is_zero(want_value),
            }
        }),
        // Same length, element-wise in order: the server may fill defaults
        // into an element (`protocol: TCP` in a port) but an added or removed
        // element is drift.
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| is_subset(w, h, path))
        }
        (Value::Array(want), Value::Null) => want.is_empty(),
        (Value::Object(want), Value::Null) => want.is_empty(),
        (Value::String(want), Value::String(have)) => {
            want == have || (holds_quantity(path) && quantities_equal(want, have))
        }
        // int-or-string fields compare by value: 1 and "1" are the same.
        (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s)) => {
            *s == n.to_string()
        }
        (Value::Number(want), Value::Number(have)) => {
            want == have || want.as_f64().is_some_and(|w| Some(w) == have.as_f64())
        }
        (want, have) => want == have,
    }
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Fields that hold a `resource.Quantity`, which the API server rewrites into
/// canonical form (`0.5` → `500m`, `1024Mi` → `1Gi`). Limited to known
/// places so that an ordinary string (an env value `"1.0"`) is never compared
/// as a number.
fn holds_quantity(path: &[&str]) -> bool {
    matches!(
        path,
        [.., "requests" | "limits", _]
            | [.., "sizeLimit" | "averageValue" | "divisor"]
            | [.., "target", "value"]
    )
}

fn quantities_equal(a: &str, b: &str) -> bool {
    match (Quantity::parse(a), Quantity::parse(b)) {
        (Some(a), Some(b)) => a.equals(&b),
        _ => false,
    }
}

/// A quantity as `mantissa × 10^exp10 × 2^exp2`, exact.
#[derive(Debug)]
struct Quantity {
    mantissa: i128,
    exp10: i32,
    exp2: i32,
}

impl Quantity {
    fn parse(text: &str) -> Option<Self> {
        let (sign, rest) = match text.as_bytes().first()? {
            b'-' => (-1, &text[1..]),
            b'+' => (1, &text[1..]),
            _ => (1, text),
        };
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_end);
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let digits = format!("{int_part}{frac_part}");
        let mantissa: i128 = digits.parse().ok()?;
        let mut exp10 = -i32::try_from(frac_part.len()).ok()?;
        let mut exp2 = 0;
        match suffix {
            "" => {}
            "n" => exp10 -= 9,
            "u" => exp10 -= 6,
            "m" => exp10 -= 3,
            "k" => exp10 += 3,
            "M" => exp10 += 6,
            "G" => exp10 += 9,
            "T" => exp10 += 12,
            "P" => exp10 += 15,
            "E" => exp10 += 18,
            "Ki" => exp2 += 10,
            "Mi" => exp2 += 20,
            "Gi" => exp2 += 30,
            "Ti" => exp2 += 40,
            "Pi" => exp2 += 50,
            "Ei" => exp2 += 60,
            s if s.starts_with(['e', 'E']) => exp10 += s[1..].parse::<i32>().ok()?,
            _ => return None,
        }
        Some(Self {
            mantissa: sign * mantissa,
            exp10,
            exp2,
        })
    }

    fn equals(&self, other: &Self) -> bool {
        let e10 = self.exp10.min(other.exp10);
        let e2 = self.exp2.min(other.exp2);
        let scale = |q: &Self| -> Option<i128> {
            let p10 = 10i128.checked_pow(u32::try_from(q.exp10 - e10).ok()?)?;
            let p2 = 2i128.checked_pow(u32::try_from(q.exp2 - e2).ok()?)?;
            q.mantissa.checked_mul(p10)?.checked_mul(p2)
        };
        match (scale(self), scale(other)) {
            (Some(a), Some(b)) => a == b,
            // Beyond i128: far outside any real resource figure; call them
            // different, which costs at most one apply.
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stamped(mut desired: Value) -> Value {
        let hash = applied_hash(&desired);
        desired["metadata"]["annotations"][APPLIED_HASH_ANNOTATION] = json!(hash);
        desired
    }

    fn deployment() -> Value {
        stamped(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "acme-orders", "labels": {"app.kubernetes.io/name": "orders"}},
            "spec": {
                "replicas": 13,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
                "template": {"spec": {
                    "containers": [{
                        "name": "orders",
                        "image": "registry.example.com/acme/orders:1.4.2",
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "env": [{"name": "FEATURE", "value": "1.0"}],
                        "resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"}},
                    }],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                }},
            },
        }))
    }

    /// The same Deployment as a real API server returns it.
    fn as_served(desired: &Value) -> Value {
        let mut served = desired.clone();
        served["metadata"]["uid"] = json!("1234");
        served["metadata"]["resourceVersion"] = json!("77");
        served["metadata"]["managedFields"] = json!([{"manager": "shopfleet"}]);
        served["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!("1");
        served["spec"]["revisionHistoryLimit"] = json!(10);
        let container = &mut served["spec"]["template"]["spec"]["containers"][0];
        container["ports"][0]["protocol"] = json!("TCP");
        container["terminationMessagePath"] = json!("/dev/termination-log");
        container["imagePullPolicy"] = json!("IfNotPresent");
        container["resources"]["requests"] = json!({"cpu": "500m", "memory": "1Gi"});
        served["spec"]["template"]["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] = json!("64Mi");
        served["status"] = json!({"replicas": 13, "availableReplicas": 13});
        served
    }

    #[test]
    fn an_absent_child_is_applied() {
        assert!(needs_apply(&deployment(), None));
    }

    #[test]
    fn no_false_diff_on_server_defaults() {
        let desired = deployment();
        assert!(!needs_apply(&desired, Some(&as_served(&desired))));
    }

    #[test]
    fn hand_edit_detected() {
        let desired = deployment();
        let mut observed = as_served(&desired);
        observed["spec"]["template"]["spec"]["containers"][0]["image"] =
            json!("evil/orders:latest");
        assert!(needs_apply(&desired, Some(&observed)));
    }

    #[test]
    fn a_hand_scale_is_detected() {
        let desired = deployment();
        let mut observed = as_served(&desired);
        observed["spec"]["replicas"] = json!(1);
        assert!(needs_apply(&desired, Some(&observed)));
    }

    #[test]
    fn an_added_or_removed_list_element_is_drift() {
        let desired = deployment();
        let mut observed = as_served(&desired);
        observed["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "DEBUG", "value": "1"}));
        assert!(needs_apply(&desired, Some(&observed)));
        let mut observed = as_served(&desired);
        observed["spec"]["template"]["spec"]["containers"][0]["env"] = json!([]);
        assert!(needs_apply(&desired, Some(&observed)));
    }

    #[test]
    fn a_changed_desired_state_is_applied_even_when_it_only_removes_fields() {
        let before = deployment();
        let observed = as_served(&before);
        let mut after = before.clone();
        after["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("resources");
        let after = stamped(after);
        assert!(needs_apply(&after, Some(&observed)));
    }

    #[test]
    fn the_hash_ignores_replicas_so_the_autoscaler_can_move_them() {
        let mut scaled = deployment();
        scaled["spec"]["replicas"] = json!(40);
        assert_eq!(applied_hash(&scaled), applied_hash(&deployment()));
        let stamped_scaled = stamped(scaled);
        let mut observed = as_served(&deployment());
        observed["spec"]["replicas"] = json!(40);
        assert!(!needs_apply(&stamped_scaled, Some(&observed)));
    }

    #[test]
    fn the_hash_ignores_its_own_annotation() {
        let desired = deployment();
        let mut unstamped = desired.clone();
        unstamped["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
        assert_eq!(applied_hash(&desired), applied_hash(&unstamped));
    }

    #[test]
    fn quantities_compare_by_value() {
        for (a, b) in [
            ("0.5", "500m"),
            ("1Gi", "1024Mi"),
            ("1073741824", "1Gi"),
            ("1k", "1000"),
            ("1e3", "1k"),
            ("100m", "0.1"),
            (".5", "500m"),
        ] {
            assert!(quantities_equal(a, b), "{a} = {b}");
        }
        for (a, b) in [("1Gi", "1G"), ("500m", "5"), ("1", "-1"), ("1x", "1")] {
            assert!(!quantities_equal(a, b), "{a} != {b}");
        }
    }

    #[test]
    fn ordinary_strings_are_not_compared_as_quantities() {
        let desired = deployment();
        let mut observed = as_served(&desired);
        observed["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = json!("1");
        assert!(needs_apply(&desired, Some(&observed)));
    }

    #[test]
    fn int_or_string_compares_by_value() {
        let desired = json!({"spec": {"maxUnavailable": 1}});
        assert!(!needs_apply(
            &desired,
            Some(&json!({"spec": {"maxUnavailable": "1"}}))
        ));
        assert!(needs_apply(
            &desired,
            Some(&json!({"spec": {"maxUnavailable": "25%"}}))
        ));
    }

    #[test]
    fn an_empty_desired_list_matches_an_omitted_field() {
        let desired = json!({"spec": {"env": [], "selector": {}}});
        assert!(!needs_apply(&desired, Some(&json!({"spec": {}}))));
    }

    /// Until AWS reports its endpoints, the order pods' endpoint variables
    /// are empty; the API server stores such a variable without `value`.
    /// Read as drift, it re-applied every Deployment on every reconcile of
    /// a bootstrap.
    #[test]
    fn an_empty_env_value_matches_the_server_omitting_it() {
        let mut desired = deployment();
        desired["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "DATABASE_WRITER_ENDPOINT", "value": ""}]);
        let mut observed = as_served(&desired);
        observed["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "DATABASE_WRITER_ENDPOINT"}]);
        assert!(!needs_apply(&desired, Some(&observed)));

        observed["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "DATABASE_WRITER_ENDPOINT", "value": "db.example"}]);
        assert!(
            needs_apply(&desired, Some(&observed)),
            "a value set by hand"
        );
    }

    #[test]
    fn a_hand_removed_field_is_drift() {
        let desired = deployment();
        let mut observed = as_served(&desired);
        observed["spec"].as_object_mut().unwrap().remove("strategy");
        assert!(needs_apply(&desired, Some(&observed)));
    }

    #[test]
    fn a_tampered_hash_annotation_is_reapplied() {
        let desired = deployment();
        let mut observed = as_served(&desired);
        observed["metadata"]["annotations"][APPLIED_HASH_ANNOTATION] = json!("0");
        assert!(needs_apply(&desired, Some(&observed)));
    }
}
