//! HTTP front end: routing of the Kubernetes REST paths, request parsing,
//! verbs, request counting and responses.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::patch::PatchType;
use crate::resource::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{DeleteOptions, ListOptions, State, Store, WriteOptions};
use crate::watch::{self, WatchRequest};

pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// Shared context of the HTTP handlers.
pub(crate) struct Ctx {
    pub store: Arc<Store>,
    pub address: String,
}

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Version,
    CoreVersions,
    Groups,
    Group(String),
    GroupVersion { group: String, version: String },
    Resource(ResourcePath),
}

/// `/api(s)/.../{plural}[/{name}[/{subresource}]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Parses a request path (pure).
pub(crate) fn parse_path(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segs.as_slice() {
        ["version"] => Some(Route::Version),
        ["api"] => Some(Route::CoreVersions),
        ["api", v] => Some(Route::GroupVersion {
            group: String::new(),
            version: v.to_string(),
        }),
        ["api", v, rest @ ..] => resource_path("", v, rest),
        ["apis"] => Some(Route::Groups),
        ["apis", g] => Some(Route::Group(g.to_string())),
        ["apis", g, v] => Some(Route::GroupVersion {
            group: g.to_string(),
            version: v.to_string(),
        }),
        ["apis", g, v, rest @ ..] => resource_path(g, v, rest),
        _ => None,
    }
}

fn resource_path(group: &str, version: &str, rest: &[&str]) -> Option<Route> {
    let rp = |namespace: Option<&str>, plural: &str, name: Option<&&str>, sub: Option<&&str>| {
        Route::Resource(ResourcePath {
            group: group.to_string(),
            version: version.to_string(),
            namespace: namespace.map(String::from),
            plural: plural.to_string(),
            name: name.map(|s| s.to_string()),
            subresource: sub.map(|s| s.to_string()),
        })
    };
    match rest {
        ["namespaces", ns, sub] if group.is_empty() && (*sub == "status" || *sub == "finalize") => {
            Some(rp(None, "namespaces", Some(ns), Some(sub)))
        }
        ["namespaces", ns, plural, tail @ ..] if tail.len() <= 2 => {
            Some(rp(Some(ns), plural, tail.first(), tail.get(1)))
        }
        [plural, tail @ ..] if tail.len() <= 2 => Some(rp(None, plural, tail.first(), tail.get(1))),
        _ => None,
    }
}

fn full(status: StatusCode, body: &Value) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|e| match e {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn ok(body: &Value) -> Response<Body> {
    full(StatusCode::OK, body)
}

fn error(e: &ApiError) -> Response<Body> {
    full(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_status(),
    )
}

/// The 403 RBAC answers, in its words.
fn forbidden(verb: &str, plural: &str, group: &str, namespace: Option<&str>) -> ApiError {
    let resource = if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    };
    let scope = match namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    ApiError::forbidden(format!(
        "{resource} is forbidden: User \"system:serviceaccount:kubesim:client\" cannot {verb} resource \"{plural}\" in API group \"{group}\" {scope}"
    ))
}

/// Serves one request.
pub(crate) async fn handle(
    ctx: Arc<Ctx>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let header = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let content_type = header(header::CONTENT_TYPE);
    let user_agent = header(header::USER_AGENT);
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(error(&ApiError::bad_request(format!(
                "reading the body failed: {e}"
            ))));
        }
    };
    let Some(route) = parse_path(parts.uri.path()) else {
        return Ok(error(&ApiError::no_route()));
    };
    let response = match route {
        Route::Resource(rp) => {
            let request = ResourceRequest {
                method: parts.method,
                rp,
                query,
                content_type,
                user_agent,
                body,
            };
            match serve_resource(&ctx, request) {
                Ok(r) => r,
                Err(e) => error(&e),
            }
        }
        other if parts.method == Method::GET => discovery(&ctx, other),
        _ => error(&ApiError::method_not_allowed()),
    };
    Ok(response)
}

fn discovery(ctx: &Ctx, route: Route) -> Response<Body> {
    let state = ctx.store.lock();
    let doc = match route {
        Route::Version => Some(json!({
            "major": "1", "minor": "34", "gitVersion": "v1.34.0-kubesim", "gitCommit": "kubesim",
            "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24",
            "compiler": "gc", "platform": "linux/amd64",
        })),
        Route::CoreVersions => Some(state.registry.core_versions(&ctx.address)),
        Route::Groups => Some(state.registry.group_list()),
        Route::Group(g) => state.registry.group(&g),
        Route::GroupVersion { group, version } => state.registry.resource_list(&group, &version),
        Route::Resource(_) => None,
    };
    match doc {
        Some(d) => ok(&d),
        None => error(&ApiError::no_route()),
    }
}

/// A resource request, parsed.
struct ResourceRequest {
    method: Method,
    rp: ResourcePath,
    query: HashMap<String, String>,
    content_type: String,
    user_agent: String,
    body: Bytes,
}

impl ResourceRequest {
    fn flag(&self, key: &str) -> bool {
        matches!(self.query.get(key).map(String::as_str), Some("true" | "1"))
    }

    fn json_body(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::bad_request(format!("json parse error: {e}")))
    }

    /// The field manager: the query parameter, else the user agent up to the first `/`.
    fn manager(&self) -> String {
        if let Some(m) = self.query.get("fieldManager") {
            return m.clone();
        }
        match self.user_agent.split('/').next() {
            Some(ua) if !ua.is_empty() => ua.to_string(),
            _ => "unknown".to_string(),
        }
    }

    fn dry_run(&self) -> bool {
        self.query.get("dryRun").is_some_and(|v| v == "All")
    }
}

fn selectors(
    rt: &ResourceType,
    q: &HashMap<String, String>,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    if rt.is_crd()
        && let Some(bad) = fields
            .paths()
            .find(|p| *p != "metadata.name" && *p != "metadata.namespace")
    {
        return Err(ApiError::bad_request(format!(
            "field label not supported: {bad}"
        )));
    }
    Ok((labels, fields))
}

fn serve_resource(ctx: &Ctx, req: ResourceRequest) -> Result<Response<Body>, ApiError> {
    let store = &ctx.store;
    let rp = &req.rp;
    let rt = store
        .lock()
        .resolve(&rp.group, &rp.version, &rp.plural)
        .ok_or_else(ApiError::no_route)?;
    if !rt.namespaced && rp.namespace.is_some() {
        return Err(ApiError::no_route());
    }
    let sub = rp.subresource.clone().unwrap_or_default();
    let served_subresource = sub.is_empty()
        || (sub == "status" && rt.status_subresource)
        || (sub == "finalize" && rt.plural == "namespaces");
    if !served_subresource {
        return Err(ApiError::no_route());
    }
    let namespace = rp.namespace.clone().unwrap_or_default();
    let watching = req.flag("watch");
    let verb = match (&req.method, &rp.name) {
        (&Method::GET, Some(_)) => "get",
        (&Method::GET, None) if watching => "watch",
        (&Method::GET, None) => "list",
        (&Method::POST, None) => "create",
        (&Method::PUT, Some(_)) => "update",
        (&Method::PATCH, Some(_)) => "patch",
        (&Method::DELETE, Some(_)) => "delete",
        (&Method::DELETE, None) => "deletecollection",
        _ => return Err(ApiError::method_not_allowed()),
    };
    store
        .lock()
        .requests
        .record(verb, &rt.plural, rp.subresource.as_deref());
    if store
        .lock()
        .forbidden
        .contains(&(verb.to_string(), rt.plural.clone()))
    {
        return Err(forbidden(
            verb,
            &rt.plural,
            &rp.group,
            rp.namespace.as_deref(),
        ));
    }
    if rt.namespaced && rp.name.is_some() && rp.namespace.is_none() {
        return Err(ApiError::no_route());
    }
    let name = rp.name.clone().unwrap_or_default();
    let write_opts = |force: bool| WriteOptions {
        manager: req.manager(),
        subresource: sub.clone(),
        dry_run: req.dry_run(),
        force,
    };
    match verb {
        "get" => Ok(ok(&store.lock().get(&rt, &namespace, &name)?)),
        "list" => {
            let (labels, fields) = selectors(&rt, &req.query)?;
            let opts = ListOptions {
                namespace: rp.namespace.clone(),
                labels,
                fields,
                limit: req.query.get("limit").and_then(|l| l.parse().ok()),
                continue_token: req.query.get("continue").filter(|c| !c.is_empty()).cloned(),
            };
            Ok(ok(&store.lock().list(&rt, &opts)?))
        }
        "watch" => {
            let (labels, fields) = selectors(&rt, &req.query)?;
            let wr = WatchRequest {
                rt: rt.clone(),
                namespace: rp.namespace.clone(),
                labels,
                fields,
                resource_version: req.query.get("resourceVersion").cloned(),
                bookmarks: req.flag("allowWatchBookmarks"),
                timeout: req
                    .query
                    .get("timeoutSeconds")
                    .and_then(|t| t.parse::<u64>().ok())
                    .map(Duration::from_secs),
                send_initial_events: req.flag("sendInitialEvents"),
            };
            let rx = watch::spawn(store.clone(), wr);
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
            });
            let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            Ok(resp)
        }
        "create" => {
            let body = req.json_body()?;
            let opts = write_opts(false);
            let created = store.with(|s| s.create(&rt, &namespace, body, &opts))?;
            Ok(full(StatusCode::CREATED, &created))
        }
        "update" => {
            let body = req.json_body()?;
            let opts = write_opts(false);
            Ok(ok(
                &store.with(|s| s.update(&rt, &namespace, &name, body, &opts))?
            ))
        }
        "patch" => {
            let patch_type = PatchType::from_content_type(&req.content_type)
                .ok_or_else(|| ApiError::unsupported_media_type(&req.content_type))?;
            let body = if patch_type == PatchType::Apply {
                match serde_json::from_slice::<Value>(&req.body) {
                    Ok(v) => v,
                    Err(_) => {
                        let text = std::str::from_utf8(&req.body)
                            .map_err(|e| ApiError::bad_request(e.to_string()))?;
                        crate::yaml::from_str(text).map_err(|e| {
                            ApiError::bad_request(format!("error decoding YAML: {e}"))
                        })?
                    }
                }
            } else {
                req.json_body()?
            };
            let mut opts = write_opts(req.flag("force"));
            if patch_type == PatchType::Apply && !req.query.contains_key("fieldManager") {
                opts.manager = String::new();
            }
            // An apply that creates the object answers 201 Created, as the real server does.
            let (patched, created) = store.with(|s| {
                let existed = s
                    .objects
                    .contains_key(&crate::store::ObjKey::new(&rt, &namespace, &name));
                s.patch(&rt, &namespace, &name, patch_type, &body, &opts)
                    .map(|v| (v, !existed))
            })?;
            Ok(if created {
                full(StatusCode::CREATED, &patched)
            } else {
                ok(&patched)
            })
        }
        "delete" => {
            let opts = delete_options(&req)?;
            Ok(ok(&store.with(|s| s.delete(&rt, &namespace, &name, &opts))?))
        }
        _ => {
            let opts = delete_options(&req)?;
            let (labels, fields) = selectors(&rt, &req.query)?;
            let deleted = store.with(|s| {
                let names: Vec<(String, String)> = s
                    .matching(&rt, rp.namespace.as_deref(), &labels, &fields)
                    .map(|(k, _)| (k.namespace.clone(), k.name.clone()))
                    .collect();
                names
                    .into_iter()
                    .filter_map(|(ns, n)| s.delete(&rt, &ns, &n, &opts).ok())
                    .collect::<Vec<Value>>()
            });
            let rv = store.lock().rv;
            Ok(ok(&json!({
                "kind": format!("{}List", rt.kind),
                "apiVersion": rt.api_version(),
                "metadata": {"resourceVersion": rv.to_string()},
                "items": deleted.iter().map(|o| State::render(&rt, o)).collect::<Vec<_>>(),
            })))
        }
    }
}

fn delete_options(req: &ResourceRequest) -> Result<DeleteOptions, ApiError> {
    let body: Value = if req.body.is_empty() {
        json!({})
    } else {
        req.json_body()?
    };
    let policy = req
        .query
        .get("propagationPolicy")
        .map(String::as_str)
        .or_else(|| body.get("propagationPolicy").and_then(Value::as_str))
        .unwrap_or("Background");
    if !matches!(policy, "Background" | "Foreground" | "Orphan") {
        return Err(ApiError::bad_request(format!(
            "invalid propagationPolicy {policy:?}"
        )));
    }
    let dry_run = req.dry_run()
        || body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    let pre = |k: &str| {
        body.pointer(&format!("/preconditions/{k}"))
            .and_then(Value::as_str)
            .map(String::from)
    };
    Ok(DeleteOptions {
        orphan: policy == "Orphan"
            || body.get("orphanDependents").and_then(Value::as_bool) == Some(true),
        dry_run,
        precondition_uid: pre("uid"),
        precondition_rv: pre("resourceVersion"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(
        group: &str,
        ns: Option<&str>,
        plural: &str,
        name: Option<&str>,
        sub: Option<&str>,
    ) -> Route {
        Route::Resource(ResourcePath {
            group: group.into(),
            version: "v1".into(),
            namespace: ns.map(String::from),
            plural: plural.into(),
            name: name.map(String::from),
            subresource: sub.map(String::from),
        })
    }

    #[test]
    fn parses_resource_paths() {
        assert_eq!(
            parse_path("/api/v1/namespaces/default/configmaps"),
            Some(rp("", Some("default"), "configmaps", None, None))
        );
        assert_eq!(
            parse_path("/apis/apps/v1/namespaces/ns/deployments/web/status"),
            Some(rp(
                "apps",
                Some("ns"),
                "deployments",
                Some("web"),
                Some("status")
            ))
        );
        assert_eq!(
            parse_path("/api/v1/namespaces/ns"),
            Some(rp("", None, "namespaces", Some("ns"), None))
        );
        assert_eq!(
            parse_path("/api/v1/namespaces/ns/status"),
            Some(rp("", None, "namespaces", Some("ns"), Some("status")))
        );
        assert_eq!(
            parse_path("/apis/apps/v1/deployments"),
            Some(rp("apps", None, "deployments", None, None))
        );
        assert_eq!(parse_path("/apis"), Some(Route::Groups));
        assert_eq!(
            parse_path("/api/v1"),
            Some(Route::GroupVersion {
                group: "".into(),
                version: "v1".into()
            })
        );
        assert_eq!(parse_path("/healthz"), None);
    }
}
