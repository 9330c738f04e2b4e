//! Errors: the public [`Error`] of the crate and the API-level [`ApiError`]
//! that is rendered as a `meta.k8s.io/v1` `Status` body, shaped like the real
//! API server's.

use serde_json::{Value, json};

/// Errors returned by the [`crate::ApiServer`] handle.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binding or serving the socket failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The YAML given to [`crate::ApiServer::install_crd_yaml`] could not be parsed.
    #[error("invalid YAML: {0}")]
    Yaml(String),
    /// Building the kube client failed.
    #[error("kube client error: {0}")]
    Kube(#[from] kube::Error),
    /// The API server rejected an operation done through a simulation hook.
    #[error("API error {}: {}", .0.code, .0.message)]
    Api(Box<ApiError>),
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error::Api(Box::new(e))
    }
}

/// One entry of `Status.details.causes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Machine-readable reason, e.g. `FieldValueInvalid`.
    pub reason: String,
    /// Human-readable message, without the field path.
    pub message: String,
    /// Field path, e.g. `spec.region`.
    pub field: String,
}

/// `Status.details` of an [`ApiError`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    /// `Status.details.name`.
    pub name: Option<String>,
    /// `Status.details.group`.
    pub group: Option<String>,
    /// `Status.details.kind`.
    pub kind: Option<String>,
    /// `Status.details.causes`.
    pub causes: Vec<Cause>,
}

/// A failed API request, rendered as a `Status` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `Status.reason`, e.g. `NotFound`.
    pub reason: String,
    /// `Status.message`.
    pub message: String,
    /// `Status.details` (boxed: errors travel through every `Result`).
    pub details: Box<Details>,
}

impl ApiError {
    fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: Box::default(),
        }
    }

    /// Sets `details.{name, group, kind}`; empty values are left out like the real server does.
    pub(crate) fn with_details(mut self, name: &str, group: &str, kind: &str) -> Self {
        self.details.name = non_empty(name);
        self.details.group = non_empty(group);
        self.details.kind = non_empty(kind);
        self
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// `404 NotFound` for `resource` (a group-qualified plural like `widgets.example.com`).
    pub(crate) fn not_found(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", group_resource(group, plural)),
        )
        .with_details(name, group, plural)
    }

    /// `404` for a path the server does not serve.
    pub(crate) fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub(crate) fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!(
                "{} \"{name}\" already exists",
                group_resource(group, plural)
            ),
        )
        .with_details(name, group, plural)
    }

    pub(crate) fn conflict(group: &str, plural: &str, name: &str, detail: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {detail}",
                group_resource(group, plural)
            ),
        )
        .with_details(name, group, plural)
    }

    pub(crate) fn stale(group: &str, plural: &str, name: &str) -> Self {
        Self::conflict(
            group,
            plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// `409` for server-side apply conflicts; `causes` carries one entry per conflicting field.
    pub(crate) fn apply_conflict(message: String, causes: Vec<Cause>) -> Self {
        let mut e = Self::new(409, "Conflict", message);
        e.details.causes = causes;
        e
    }

    /// `422 Invalid` with field causes, message `Kind.group "name" is invalid: ...`.
    pub(crate) fn invalid(
        qualified_kind: &str,
        group: &str,
        kind: &str,
        name: &str,
        causes: Vec<Cause>,
    ) -> Self {
        let rendered: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let joined = if rendered.len() == 1 {
            rendered[0].clone()
        } else {
            format!("[{}]", rendered.join(", "))
        };
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{qualified_kind} \"{name}\" is invalid: {joined}"),
        )
        .with_details(name, group, kind);
        e.details.causes = causes;
        e
    }

    /// `422` for a JSON patch that cannot be applied (e.g. a failing `test` op).
    pub(crate) fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }

    /// `500` with no reason, as the real server answers an applied
    /// configuration it cannot turn into a typed object.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "", message)
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub(crate) fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml; got {content_type:?}"
            ),
        )
    }

    /// `410 Gone` for a watch from a resource version that has been compacted away.
    pub(crate) fn too_old(requested: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// `410 Gone` for an expired list continue token.
    pub(crate) fn continue_expired() -> Self {
        Self::new(
            410,
            "Expired",
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
        )
    }

    /// The `Status` JSON body.
    pub fn to_status(&self) -> Value {
        let mut details = serde_json::Map::new();
        if let Some(n) = &self.details.name {
            details.insert("name".into(), json!(n));
        }
        if let Some(g) = &self.details.group {
            details.insert("group".into(), json!(g));
        }
        if let Some(k) = &self.details.kind {
            details.insert("kind".into(), json!(k));
        }
        if !self.details.causes.is_empty() {
            let causes: Vec<Value> = self
                .details
                .causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if self.reason.is_empty()
            && let Some(o) = status.as_object_mut()
        {
            o.remove("reason");
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

/// `plural` or `plural.group`, as the real server names resources in messages.
pub(crate) fn group_resource(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_status_is_shaped_like_the_real_one() {
        let s = ApiError::not_found("apps", "deployments", "web").to_status();
        assert_eq!(
            s,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "deployments.apps \"web\" not found", "reason": "NotFound",
                "details": {"name": "web", "group": "apps", "kind": "deployments"}, "code": 404
            })
        );
    }

    #[test]
    fn invalid_joins_multiple_causes_in_brackets() {
        let cause = |f: &str| Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: f.into(),
        };
        let e = ApiError::invalid(
            "Widget.x.dev",
            "x.dev",
            "Widget",
            "w",
            vec![cause("spec.a"), cause("spec.b")],
        );
        assert_eq!(
            e.message,
            "Widget.x.dev \"w\" is invalid: [spec.a: Required value, spec.b: Required value]"
        );
        let single = ApiError::invalid(
            "Widget.x.dev",
            "x.dev",
            "Widget",
            "w",
            vec![cause("spec.a")],
        );
        assert_eq!(
            single.message,
            "Widget.x.dev \"w\" is invalid: spec.a: Required value"
        );
    }
}
