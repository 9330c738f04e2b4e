//! The object store: objects keyed by resource/namespace/name, the global
//! resource-version counter, the event history watches resume from, and the
//! write pipeline (admission, validation, managed fields, generation,
//! finalizers, garbage collection, CRD registration, rollout emulation).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use crate::apply::{self, WriteContext};
use crate::error::{ApiError, Cause};
use crate::gc::{self, GcAction};
use crate::patch::{self, PatchType};
use crate::resource::{self, Registry, ResourceType};
use crate::rollout::{self, Phase, RolloutPolicy};
use crate::selector::{FieldSelector, LabelSelector};
use crate::{RequestLog, schema};

/// Events kept for watch resumption before the oldest are compacted away.
const HISTORY_CAPACITY: usize = 10_000;
/// Manager name of the simulated controllers' status writes.
const CONTROLLER_MANAGER: &str = "kube-controller-manager";

/// Storage key. Ordering gives the real server's list order (namespace, name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ObjKey {
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
}

impl ObjKey {
    pub(crate) fn new(rt: &ResourceType, namespace: &str, name: &str) -> Self {
        ObjKey {
            group: rt.group.clone(),
            plural: rt.plural.clone(),
            namespace: if rt.namespaced {
                namespace.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }

    fn same_resource(&self, rt: &ResourceType) -> bool {
        self.group == rt.group && self.plural == rt.plural
    }
}

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change. The versions are shared with the store and with
/// the neighbouring events: the history holds each version once.
#[derive(Debug)]
pub(crate) struct StoredEvent {
    pub rv: u64,
    pub key: ObjKey,
    pub event_type: EventType,
    pub object: Arc<Value>,
    /// The object before the change (for selector transitions).
    pub prev: Option<Arc<Value>>,
}

/// Who is writing, and how.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteOptions {
    pub manager: String,
    pub subresource: String,
    pub dry_run: bool,
    pub force: bool,
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeleteOptions {
    pub orphan: bool,
    pub dry_run: bool,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

/// A list request.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListOptions {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

/// Side effects that run after the state lock is released.
#[derive(Debug)]
pub(crate) enum Effect {
    Rollout { key: ObjKey, generation: i64 },
}

enum Managed {
    /// A non-apply write by this manager: ownership follows the changes.
    Track,
    /// Server-side apply already computed and wrote the entries.
    Preset,
}

/// Deployment rollout emulation settings.
#[derive(Debug, Clone, Default)]
pub(crate) struct RolloutSettings {
    pub policy: RolloutPolicy,
    pub failing_images: Vec<String>,
}

/// Everything behind the lock.
pub(crate) struct State {
    pub rv: u64,
    /// Each version is immutable once stored, and shared with the event
    /// history rather than copied into it.
    pub objects: BTreeMap<ObjKey, Arc<Value>>,
    history: VecDeque<Arc<StoredEvent>>,
    /// Watches from a resource version older than this get 410 Gone.
    pub compacted_rv: u64,
    pub registry: Registry,
    pub requests: RequestLog,
    pub rollout: RolloutSettings,
    pub bookmark_interval: Duration,
    /// (verb, plural) pairs refused with 403, as RBAC refuses a client
    /// without the permission.
    pub forbidden: HashSet<(String, String)>,
    effects: Vec<Effect>,
    events: broadcast::Sender<Arc<StoredEvent>>,
    /// Uids of owners deleted with `propagationPolicy=Orphan`.
    orphaned: HashSet<String>,
}

/// Shared server state.
pub(crate) struct Store {
    state: Mutex<State>,
    /// Bumped to make every open watch end.
    pub close_watches: watch::Sender<u64>,
}

/// The ConfigMap the real controller-manager's root-CA publisher keeps in
/// every namespace, with its annotation.
pub(crate) const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
const ROOT_CA_DESCRIPTION_KEY: &str = "kubernetes.io/description";
const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";
/// A fixed self-signed CA certificate (kubesim serves plain HTTP: nothing
/// is verified with it; only its shape matters).
const ROOT_CA_CERT: &str = include_str!("root-ca.crt");

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Store {
    pub(crate) fn new() -> Arc<Store> {
        let (close_watches, _) = watch::channel(0);
        Arc::new(Store {
            state: Mutex::new(State::new()),
            close_watches,
        })
    }

    /// Locks the state; poisoning (a panic while locked) is not recoverable
    /// state corruption here, so the inner state is used as is.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` under the lock, then runs the side effects it queued.
    pub(crate) fn with<R>(self: &Arc<Self>, f: impl FnOnce(&mut State) -> R) -> R {
        let (result, effects) = {
            let mut state = self.lock();
            let r = f(&mut state);
            (r, std::mem::take(&mut state.effects))
        };
        for e in effects {
            self.run_effect(e);
        }
        result
    }

    fn run_effect(self: &Arc<Self>, effect: Effect) {
        let Effect::Rollout { key, generation } = effect;
        let policy = self.lock().rollout.policy.clone();
        match policy {
            RolloutPolicy::Immediate => self.finish_rollout(&key, Some(generation)),
            RolloutPolicy::Never | RolloutPolicy::Manual => {
                self.with(|s| s.write_rollout(&key, Phase::Progressing, Some(generation)))
            }
            RolloutPolicy::AfterDelay(delay) => {
                self.with(|s| s.write_rollout(&key, Phase::Progressing, Some(generation)));
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    let store = Arc::downgrade(self);
                    handle.spawn(async move {
                        tokio::time::sleep(delay).await;
                        if let Some(store) = store.upgrade() {
                            store.finish_rollout(&key, Some(generation));
                        }
                    });
                }
            }
        }
    }

    /// Completes (or fails, for failing images) the rollout of a Deployment.
    pub(crate) fn finish_rollout(self: &Arc<Self>, key: &ObjKey, generation: Option<i64>) {
        self.with(|s| {
            let failing = s
                .objects
                .get(key)
                .and_then(|d| rollout::failing_image(d, &s.rollout.failing_images));
            let phase = if failing.is_some() {
                Phase::Failed
            } else {
                Phase::Complete
            };
            s.write_rollout(key, phase, generation);
        });
    }
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

fn meta_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just set to an object"),
    }
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The object without metadata (and without status when `drop_status`), for generation bumps.
fn spec_view(obj: &Value, drop_status: bool) -> Value {
    let mut v = obj.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
        o.remove("apiVersion");
        o.remove("kind");
        if drop_status {
            o.remove("status");
        }
    }
    v
}

/// Checks a name against RFC 1123 (a DNS label for namespaces, a subdomain otherwise).
fn validate_name(rt: &ResourceType, name: &str) -> Option<Cause> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let (ok, what) = if rt.plural == "namespaces" {
        (
            label_ok(name),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        )
    } else if rt.plural == "events" {
        (
            !name.is_empty() && !name.contains('/'),
            "may not contain '/'",
        )
    } else {
        (
            name.len() <= 253 && name.split('.').all(label_ok),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        )
    };
    (!ok).then(|| Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: \"{name}\": {what}"),
        field: "metadata.name".into(),
    })
}

fn invalid(rt: &ResourceType, name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid(&rt.qualified_kind(), &rt.group, &rt.kind, name, causes)
}

/// Parses a continue token into (resource version, last key).
fn decode_continue(token: &str) -> Option<(u64, String, String)> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    Some((
        v.get("rv")?.as_u64()?,
        v.get("ns")?.as_str()?.to_string(),
        v.get("name")?.as_str()?.to_string(),
    ))
}

fn encode_continue(rv: u64, namespace: &str, name: &str) -> String {
    use base64::Engine;
    let v = json!({"v": "meta.k8s.io/v1", "rv": rv, "ns": namespace, "name": name});
    base64::engine::general_purpose::STANDARD.encode(v.to_string())
}

impl State {
    pub(crate) fn new() -> State {
        let (events, _) = broadcast::channel(4096);
        let mut state = State {
            rv: 0,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            compacted_rv: 0,
            registry: Registry::with_builtins(),
            requests: RequestLog::default(),
            rollout: RolloutSettings::default(),
            bookmark_interval: Duration::from_secs(1),
            forbidden: HashSet::new(),
            effects: Vec::new(),
            events,
            orphaned: HashSet::new(),
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            state.ensure_namespace(ns);
        }
        state
    }

    fn namespace_active(&self, namespace: &str) -> bool {
        let key = ObjKey {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: namespace.into(),
        };
        self.objects
            .get(&key)
            .is_some_and(|ns| ns.pointer("/metadata/deletionTimestamp").is_none())
    }

    /// What the real controller-manager keeps in every active namespace: the
    /// `kube-root-ca.crt` ConfigMap (root-CA publisher) and the `default`
    /// ServiceAccount (service account controller), re-created when deleted
    /// and, for the ConfigMap, restored when changed. Written at once (the
    /// real controllers take a few milliseconds); not counted as requests.
    fn publish_namespace_defaults(&mut self, namespace: &str) {
        if !self.namespace_active(namespace) {
            return;
        }
        self.publish_root_ca(namespace);
        if let Some(rt) = self.registry.find_any_version("", "serviceaccounts") {
            let key = ObjKey::new(&rt, namespace, "default");
            if !self.objects.contains_key(&key) {
                // The real one has no managedFields.
                let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": namespace}});
                let sa = self.stamp_new(sa, None);
                self.commit(key, sa);
            }
        }
    }

    fn publish_root_ca(&mut self, namespace: &str) {
        let Some(rt) = self.registry.find_any_version("", "configmaps") else {
            return;
        };
        let key = ObjKey::new(&rt, namespace, ROOT_CA_CONFIGMAP);
        let data = json!({"ca.crt": ROOT_CA_CERT});
        let opts = WriteOptions {
            manager: "kube-controller-manager".into(),
            ..Default::default()
        };
        let (old, new) = match self.objects.get(&key) {
            None => {
                let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": namespace,
                        "annotations": {ROOT_CA_DESCRIPTION_KEY: ROOT_CA_DESCRIPTION}},
                    "data": data});
                (None, self.stamp_new(cm, None))
            }
            Some(old) => {
                let described = old
                    .pointer("/metadata/annotations")
                    .and_then(|a| a.get(ROOT_CA_DESCRIPTION_KEY))
                    .and_then(Value::as_str)
                    .is_some_and(|d| !d.is_empty());
                if old.get("data") == Some(&data) && described {
                    return;
                }
                let mut new = Value::clone(old);
                new["data"] = data;
                let annotations = meta_mut(&mut new)
                    .entry("annotations")
                    .or_insert_with(|| json!({}));
                if !annotations.is_object() {
                    *annotations = json!({});
                }
                annotations[ROOT_CA_DESCRIPTION_KEY] = json!(ROOT_CA_DESCRIPTION);
                (Some(Value::clone(old)), new)
            }
        };
        let _ = self.finish_write(&rt, key, old, new, Managed::Track, &opts);
    }

    fn ensure_namespace(&mut self, name: &str) {
        let key = ObjKey {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: name.into(),
        };
        if self.objects.contains_key(&key) {
            return;
        }
        let obj = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
        let obj = self.stamp_new(obj, None);
        self.commit(key, obj);
        self.publish_namespace_defaults(name);
    }

    /// A copy of the stored version of `key`, to build the next one from.
    fn current(&self, key: &ObjKey) -> Option<Value> {
        self.objects.get(key).map(|o| Value::clone(o))
    }

    /// Renders a stored object for a request against `rt` (its served version).
    pub(crate) fn render(rt: &ResourceType, obj: &Value) -> Value {
        let mut out = obj.clone();
        out["apiVersion"] = json!(rt.api_version());
        out["kind"] = json!(rt.kind);
        out
    }

    fn stamp_new(&mut self, mut obj: Value, generation: Option<i64>) -> Value {
        let meta = meta_mut(&mut obj);
        meta.insert("uid".into(), json!(crate::ids::uid()));
        meta.insert("creationTimestamp".into(), json!(now()));
        if let Some(g) = generation {
            meta.insert("generation".into(), json!(g));
        }
        obj
    }

    /// Stores `obj` under a fresh resource version (it replaces the stored
    /// version, if any) and notifies watchers.
    fn commit(&mut self, key: ObjKey, mut obj: Value) -> Value {
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let stored = Arc::new(obj);
        let prev = self.objects.insert(key.clone(), stored.clone());
        let event_type = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(key, event_type, stored.clone(), prev);
        Value::clone(&stored)
    }

    /// Removes an object for good under a fresh resource version.
    fn remove(&mut self, key: &ObjKey) -> Option<Value> {
        let prev = self.objects.remove(key)?;
        self.rv += 1;
        let mut obj = Value::clone(&prev);
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let obj = Arc::new(obj);
        self.record(key.clone(), EventType::Deleted, obj.clone(), Some(prev));
        self.after_removal(key, &obj);
        Some(Value::clone(&obj))
    }

    fn record(
        &mut self,
        key: ObjKey,
        event_type: EventType,
        object: Arc<Value>,
        prev: Option<Arc<Value>>,
    ) {
        let ev = Arc::new(StoredEvent {
            rv: self.rv,
            key,
            event_type,
            object,
            prev,
        });
        self.history.push_back(ev.clone());
        while self.history.len() > HISTORY_CAPACITY {
            if let Some(old) = self.history.pop_front() {
                self.compacted_rv = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(ev);
    }

    /// A receiver of every event committed after this call.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.events.subscribe()
    }

    /// Forgets the event history: watches from older versions get 410 Gone.
    pub(crate) fn compact(&mut self) {
        self.history.clear();
        self.compacted_rv = self.rv;
    }

    /// Events after `rv`, or `Err(oldest)` if `rv` was compacted away.
    pub(crate) fn events_since(&self, rv: u64) -> Result<Vec<Arc<StoredEvent>>, u64> {
        if rv < self.compacted_rv {
            return Err(self.compacted_rv);
        }
        Ok(self.history.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    pub(crate) fn resolve(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<Arc<ResourceType>> {
        self.registry.find(group, version, plural)
    }

    pub(crate) fn get(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.objects
            .get(&ObjKey::new(rt, namespace, name))
            .map(|o| Self::render(rt, o))
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// Objects of `rt` matching namespace and selectors, in key order.
    pub(crate) fn matching<'a>(
        &'a self,
        rt: &'a ResourceType,
        namespace: Option<&'a str>,
        labels: &'a LabelSelector,
        fields: &'a FieldSelector,
    ) -> impl Iterator<Item = (&'a ObjKey, &'a Value)> + 'a {
        let start = ObjKey {
            group: rt.group.clone(),
            plural: rt.plural.clone(),
            namespace: String::new(),
            name: String::new(),
        };
        self.objects
            .range(start..)
            .take_while(move |(k, _)| k.same_resource(rt))
            .map(|(k, o)| (k, &**o))
            .filter(move |(k, o)| {
                namespace.is_none_or(|ns| k.namespace == ns)
                    && labels.matches(o)
                    && fields.matches(o)
            })
    }

    pub(crate) fn list(&self, rt: &ResourceType, opts: &ListOptions) -> Result<Value, ApiError> {
        let after = match &opts.continue_token {
            Some(token) => {
                let (rv, ns, name) = decode_continue(token)
                    .ok_or_else(|| ApiError::bad_request("invalid continue token"))?;
                if rv < self.compacted_rv {
                    return Err(ApiError::continue_expired());
                }
                Some((ns, name))
            }
            None => None,
        };
        let mut items = Vec::new();
        let mut remaining = 0usize;
        let candidates = self
            .matching(rt, opts.namespace.as_deref(), &opts.labels, &opts.fields)
            .filter(|(k, _)| {
                after.as_ref().is_none_or(|(ns, name)| {
                    (k.namespace.as_str(), k.name.as_str()) > (ns.as_str(), name.as_str())
                })
            });
        for (_, o) in candidates {
            if opts.limit.is_some_and(|l| l > 0 && items.len() >= l) {
                remaining += 1;
            } else {
                items.push(Self::render(rt, o));
            }
        }
        // The token names the last returned key; the next page starts after it.
        let token = (remaining > 0).then(|| items.last()).flatten().map(|o| {
            encode_continue(
                self.rv,
                meta_str(o, "namespace").unwrap_or(""),
                meta_str(o, "name").unwrap_or(""),
            )
        });
        let mut meta = json!({"resourceVersion": self.rv.to_string()});
        if let Some(t) = token {
            meta["continue"] = json!(t);
            meta["remainingItemCount"] = json!(remaining);
        }
        Ok(json!({
            "kind": format!("{}List", rt.kind),
            "apiVersion": rt.api_version(),
            "metadata": meta,
            "items": items,
        }))
    }

    fn check_namespace(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        if !rt.namespaced {
            return Ok(());
        }
        let key = ObjKey {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: namespace.into(),
        };
        match self.objects.get(&key) {
            None => Err(ApiError::not_found("", "namespaces", namespace)),
            Some(ns) if ns.pointer("/metadata/deletionTimestamp").is_some() => Err(ApiError::forbidden(format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                crate::error::group_resource(&rt.group, &rt.plural),
            ))
            .with_details(name, &rt.group, &rt.plural)),
            Some(_) => Ok(()),
        }
    }

    fn check_type(rt: &ResourceType, body: &Value) -> Result<(), ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        if let Some(av) = body.get("apiVersion").and_then(Value::as_str)
            && av != rt.api_version()
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                rt.api_version()
            )));
        }
        if let Some(kind) = body.get("kind").and_then(Value::as_str)
            && kind != rt.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                rt.kind
            )));
        }
        Ok(())
    }

    pub(crate) fn create(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        mut body: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        Self::check_type(rt, &body)?;
        if !opts.subresource.is_empty() {
            return Err(ApiError::method_not_allowed());
        }
        if rt.namespaced
            && let Some(ns) = meta_str(&body, "namespace")
            && ns != namespace
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let name = match (meta_str(&body, "name"), meta_str(&body, "generateName")) {
            (Some(n), _) if !n.is_empty() => n.to_string(),
            (_, Some(prefix)) if !prefix.is_empty() => format!("{prefix}{}", crate::ids::suffix()),
            _ => {
                return Err(invalid(
                    rt,
                    "",
                    vec![Cause {
                        reason: "FieldValueRequired".into(),
                        message: "Required value: name or generateName is required".into(),
                        field: "metadata.name".into(),
                    }],
                ));
            }
        };
        if let Some(cause) = validate_name(rt, &name) {
            return Err(invalid(rt, &name, vec![cause]));
        }
        self.check_namespace(rt, namespace, &name)?;
        let key = ObjKey::new(rt, namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        let meta = meta_mut(&mut body);
        meta.insert("name".into(), json!(name));
        if rt.namespaced {
            meta.insert("namespace".into(), json!(namespace));
        } else {
            meta.remove("namespace");
        }
        for f in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
        ] {
            meta.remove(f);
        }
        if rt.status_subresource
            && let Some(o) = body.as_object_mut()
        {
            o.remove("status");
        }
        if rt.plural == "namespaces" && rt.group.is_empty() {
            body["spec"] = json!({"finalizers": ["kubernetes"]});
            body["status"] = json!({"phase": "Active"});
            let labels = meta_mut(&mut body)
                .entry("labels")
                .or_insert_with(|| json!({}));
            labels["kubernetes.io/metadata.name"] = json!(name);
        }
        body["apiVersion"] = json!(rt.api_version());
        body["kind"] = json!(rt.kind);
        let obj = self.stamp_new(body, rt.tracks_generation.then_some(1));
        self.finish_write(rt, key, None, obj, Managed::Track, opts)
    }

    pub(crate) fn update(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        Self::check_type(rt, &body)?;
        if let Some(n) = meta_str(&body, "name")
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        let key = ObjKey::new(rt, namespace, name);
        let old = self
            .current(&key)
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        if let Some(rv) = meta_str(&body, "resourceVersion")
            && !rv.is_empty()
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::stale(&rt.group, &rt.plural, name));
        }
        let new = Self::merge_into_old(rt, &old, body, &opts.subresource);
        self.finish_write(rt, key, Some(old), new, Managed::Track, opts)
    }

    /// Builds the new object of an update: server-owned metadata comes from
    /// `old`, and the status-subresource rules decide which parts persist.
    fn merge_into_old(rt: &ResourceType, old: &Value, body: Value, subresource: &str) -> Value {
        if subresource == "status" {
            let mut new = old.clone();
            match body.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            return new;
        }
        let mut new = body;
        new["apiVersion"] = json!(rt.api_version());
        new["kind"] = json!(rt.kind);
        let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
        let meta = meta_mut(&mut new);
        for f in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
            "managedFields",
        ] {
            match old_meta.get(f) {
                Some(v) => {
                    meta.insert(f.into(), v.clone());
                }
                None => {
                    meta.remove(f);
                }
            }
        }
        if rt.status_subresource {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        new
    }

    pub(crate) fn patch(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        patch_type: PatchType,
        body: &Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let key = ObjKey::new(rt, namespace, name);
        let old = self.current(&key);
        if patch_type == PatchType::Apply {
            return self.apply(rt, key, old, body, opts);
        }
        let old = old.ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        let patched = match patch_type {
            PatchType::Json => patch::json_patch(&old, body).map_err(ApiError::unprocessable)?,
            PatchType::Merge => patch::merge_patch(&old, body),
            PatchType::Strategic => {
                if rt.is_crd() {
                    return Err(ApiError::unsupported_media_type(
                        "application/strategic-merge-patch+json",
                    ));
                }
                patch::strategic_merge_patch(&old, body, &rt.rules())
            }
            PatchType::Apply => unreachable!("handled above"),
        };
        if meta_str(&patched, "resourceVersion") != meta_str(&old, "resourceVersion") {
            return Err(ApiError::stale(&rt.group, &rt.plural, name));
        }
        if meta_str(&patched, "name") != Some(name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object does not match the name on the URL ({name})"
            )));
        }
        let new = Self::merge_into_old(rt, &old, patched, &opts.subresource);
        self.finish_write(rt, key, Some(old), new, Managed::Track, opts)
    }

    fn apply(
        &mut self,
        rt: &ResourceType,
        key: ObjKey,
        old: Option<Value>,
        applied: &Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        if opts.manager.is_empty() {
            return Err(ApiError::invalid(
                "PatchOptions.meta.k8s.io",
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value: is required for apply patch".into(),
                    field: "fieldManager".into(),
                }],
            ));
        }
        if !applied.is_object() {
            return Err(ApiError::bad_request(
                "the applied configuration must be an object",
            ));
        }
        if applied.get("apiVersion").and_then(Value::as_str).is_none()
            || applied.get("kind").and_then(Value::as_str).is_none()
        {
            return Err(ApiError::bad_request(
                "apiVersion and kind must be set in the applied configuration",
            ));
        }
        Self::check_type(rt, applied)?;
        crate::typed::check_apply(
            applied,
            &rt.group,
            &rt.api_version(),
            &rt.kind,
            rt.schema.as_deref(),
        )?;
        let applied = &crate::typed::normalize_apply(applied, &rt.group, &rt.kind);
        if let Some(n) = meta_str(applied, "name")
            && n != key.name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({})",
                key.name
            )));
        }
        if let (Some(rv), Some(old)) = (meta_str(applied, "resourceVersion"), &old)
            && !rv.is_empty()
            && Some(rv) != meta_str(old, "resourceVersion")
        {
            return Err(ApiError::stale(&rt.group, &rt.plural, &key.name));
        }
        if old.is_none() && !opts.subresource.is_empty() {
            return Err(ApiError::not_found(&rt.group, &rt.plural, &key.name));
        }
        let mut applied_content = apply::managed_content(applied);
        apply::restrict_to_subresource(
            &mut applied_content,
            &opts.subresource,
            rt.status_subresource,
        );
        let live = old.clone().unwrap_or_else(|| json!({}));
        let live_content = apply::managed_content(&live);
        let now = now();
        let rules = rt.rules();
        let req = WriteContext {
            manager: &opts.manager,
            subresource: &opts.subresource,
            api_version: &rt.api_version(),
            force: opts.force,
            now: &now,
            rules: &rules,
        };
        let (merged, entries) = apply::apply(
            &live_content,
            &apply::read_managed(&live),
            &applied_content,
            &req,
        )
        .map_err(|conflicts| {
            let (message, causes) = apply::conflict_error(&conflicts);
            ApiError::apply_conflict(message, causes)
        })?;
        // Rebuild the full object: merged content plus the server-owned metadata.
        let mut new = merged;
        new["apiVersion"] = json!(rt.api_version());
        new["kind"] = json!(rt.kind);
        let server_meta = live.get("metadata").cloned().unwrap_or_else(|| json!({}));
        let meta = meta_mut(&mut new);
        for f in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            if let Some(v) = server_meta.get(f) {
                meta.insert(f.into(), v.clone());
            }
        }
        meta.insert("name".into(), json!(key.name));
        if rt.namespaced {
            meta.insert("namespace".into(), json!(key.namespace));
        }
        apply::write_managed(&mut new, &entries);
        match old {
            Some(old) => self.finish_write(rt, key, Some(old), new, Managed::Preset, opts),
            None => {
                if let Some(cause) = validate_name(rt, &key.name) {
                    return Err(invalid(rt, &key.name, vec![cause]));
                }
                self.check_namespace(rt, &key.namespace, &key.name)?;
                if rt.status_subresource
                    && let Some(o) = new.as_object_mut()
                {
                    o.remove("status");
                }
                let new = self.stamp_new(new, rt.tracks_generation.then_some(1));
                self.finish_write(rt, key, None, new, Managed::Preset, opts)
            }
        }
    }

    /// The common tail of every write: admission checks, CRD schema, generation,
    /// managed fields, no-op detection, commit and post-commit hooks.
    fn finish_write(
        &mut self,
        rt: &ResourceType,
        key: ObjKey,
        old: Option<Value>,
        mut new: Value,
        managed: Managed,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let name = key.name.clone();
        if let Some(old) = &old
            && old.pointer("/metadata/deletionTimestamp").is_some()
        {
            let before = finalizers(old);
            let added: Vec<String> = finalizers(&new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                let list: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
                return Err(invalid(
                    rt,
                    &name,
                    vec![Cause {
                        reason: "FieldValueForbidden".into(),
                        message: format!(
                            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                            list.join(", ")
                        ),
                        field: "metadata.finalizers".into(),
                    }],
                ));
            }
        }
        if let Some(s) = &rt.schema {
            schema::prune(&mut new, s);
            schema::apply_defaults(&mut new, s);
            // Like the real server: structural errors, then the CEL rules'
            // results, unless a blocking structural error stopped them.
            let mut causes = schema::validate(&new, s);
            if schema::has_cel_rules(s) {
                if causes.iter().any(schema::blocks_cel) {
                    causes.push(schema::cel_not_checked());
                } else {
                    causes.extend(schema::validate_cel(
                        &new,
                        old.as_ref(),
                        s,
                        &rt.api_version(),
                        &rt.kind,
                    ));
                }
            }
            if !causes.is_empty() {
                return Err(invalid(rt, &name, causes));
            }
        }
        // Stored (and answered) as the real server does after its JSON round trip.
        crate::gofmt::round_trip_numbers(&mut new);
        if rt.group == "apiextensions.k8s.io" {
            Self::prepare_crd(rt, &name, &mut new)?;
        }
        if rt.group.is_empty() && rt.kind == "Secret" {
            fold_string_data(&mut new);
        }
        if rt.tracks_generation
            && let Some(old) = &old
        {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let drop_status = rt.status_subresource;
            let bumped = spec_view(old, drop_status) != spec_view(&new, drop_status);
            meta_mut(&mut new).insert(
                "generation".into(),
                json!(if bumped { generation + 1 } else { generation }),
            );
        }
        if let Managed::Track = managed {
            let old_content = old.as_ref().map(apply::managed_content);
            let (api_version, now, rules) = (rt.api_version(), now(), rt.rules());
            let ctx = WriteContext {
                manager: &opts.manager,
                subresource: &opts.subresource,
                api_version: &api_version,
                force: false,
                now: &now,
                rules: &rules,
            };
            let entries = apply::track_update(
                old_content.as_ref(),
                &apply::managed_content(&new),
                &old.as_ref().map(apply::read_managed).unwrap_or_default(),
                &ctx,
            );
            apply::write_managed(&mut new, &entries);
        }
        if let Some(old) = &old
            && apply::without_managed_times(old) == apply::without_managed_times(&new)
        {
            return Ok(Self::render(rt, old));
        }
        if opts.dry_run {
            return Ok(Self::render(rt, &new));
        }
        let generation_changed = old.as_ref().and_then(|o| o.pointer("/metadata/generation"))
            != new.pointer("/metadata/generation");
        let committed = self.commit(key.clone(), new);
        let committed = self.after_write(rt, &key, committed, generation_changed);
        Ok(Self::render(rt, &committed))
    }

    /// Validates a CRD, registers its types and fills in its status.
    fn prepare_crd(rt: &ResourceType, name: &str, crd: &mut Value) -> Result<(), ApiError> {
        let types = resource::crd_types(crd).map_err(|errs| {
            invalid(
                rt,
                name,
                errs.into_iter()
                    .map(|(field, message)| Cause {
                        reason: "FieldValueInvalid".into(),
                        message,
                        field,
                    })
                    .collect(),
            )
        })?;
        let names = crd
            .pointer("/spec/names")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let mut accepted = names.clone();
        if accepted.get("singular").is_none()
            && let Some(kind) = names.get("kind").and_then(Value::as_str)
        {
            accepted["singular"] = json!(kind.to_lowercase());
        }
        if accepted.get("listKind").is_none()
            && let Some(kind) = names.get("kind").and_then(Value::as_str)
        {
            accepted["listKind"] = json!(format!("{kind}List"));
        }
        let storage: Vec<Value> = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .map(|vs| {
                vs.iter()
                    .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                    .filter_map(|v| v.get("name").cloned())
                    .collect()
            })
            .unwrap_or_default();
        let t = crd
            .pointer("/metadata/creationTimestamp")
            .cloned()
            .unwrap_or_else(|| json!(now()));
        let _ = types;
        crd["status"] = json!({
            "acceptedNames": accepted,
            "storedVersions": storage,
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": t},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": t},
            ],
        });
        Ok(())
    }

    /// Hooks after a committed write. Returns the (possibly removed) object.
    fn after_write(
        &mut self,
        rt: &ResourceType,
        key: &ObjKey,
        obj: Value,
        generation_changed: bool,
    ) -> Value {
        if rt.group == "apiextensions.k8s.io"
            && rt.plural == "customresourcedefinitions"
            && obj.pointer("/metadata/deletionTimestamp").is_none()
            && let Ok(types) = resource::crd_types(&obj)
        {
            self.registry.set_crd_types(&key.name, types);
        }
        if rt.group == "apps"
            && rt.plural == "deployments"
            && generation_changed
            && obj.pointer("/metadata/deletionTimestamp").is_none()
        {
            let generation = obj
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            self.effects.push(Effect::Rollout {
                key: key.clone(),
                generation,
            });
        }
        if obj.pointer("/metadata/deletionTimestamp").is_some() && finalizers(&obj).is_empty() {
            return self.remove(key).unwrap_or(obj);
        }
        if rt.group.is_empty() && rt.plural == "namespaces" {
            self.publish_namespace_defaults(&key.name);
        }
        if rt.group.is_empty() && rt.plural == "configmaps" && key.name == ROOT_CA_CONFIGMAP {
            // The writer gets its own result; the publisher restores right after.
            self.publish_root_ca(&key.namespace);
        }
        obj
    }

    /// Writes the simulated deployment controller's status for `key`, if the
    /// Deployment still exists and is still at `generation` (when given).
    pub(crate) fn write_rollout(&mut self, key: &ObjKey, phase: Phase, generation: Option<i64>) {
        let Some(current) = self.current(key) else {
            return;
        };
        let current_gen = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        if generation.is_some_and(|g| g != current_gen) {
            return;
        }
        let failing = rollout::failing_image(&current, &self.rollout.failing_images);
        let status = rollout::status(&current, phase, failing.as_deref(), &now());
        let Some(rt) = self.registry.find_any_version(&key.group, &key.plural) else {
            return;
        };
        let mut body = current.clone();
        body["status"] = status;
        let opts = WriteOptions {
            manager: CONTROLLER_MANAGER.into(),
            subresource: "status".into(),
            ..Default::default()
        };
        if let Err(e) = self.update(&rt, &key.namespace, &key.name, body, &opts) {
            tracing::warn!(error = %e, "simulated deployment status write failed");
        }
    }

    pub(crate) fn delete(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let key = ObjKey::new(rt, namespace, name);
        let old = self
            .current(&key)
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        if let Some(uid) = &opts.precondition_uid
            && Some(uid.as_str()) != meta_str(&old, "uid")
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old, "uid").unwrap_or("")
                ),
            ));
        }
        if let Some(rv) = &opts.precondition_rv
            && Some(rv.as_str()) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&old, "resourceVersion").unwrap_or("")
                ),
            ));
        }
        if opts.dry_run {
            return Ok(Self::render(rt, &old));
        }
        if opts.orphan {
            self.orphaned
                .insert(meta_str(&old, "uid").unwrap_or("").to_string());
        }
        Ok(Self::render(rt, &self.delete_key(&key)))
    }

    /// Deletes (or starts the graceful deletion of) an object; returns its latest state.
    fn delete_key(&mut self, key: &ObjKey) -> Value {
        let Some(old) = self.current(key) else {
            return Value::Null;
        };
        let is_namespace = key.group.is_empty() && key.plural == "namespaces";
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            return old;
        }
        if !finalizers(&old).is_empty() || is_namespace {
            let mut new = old.clone();
            let meta = meta_mut(&mut new);
            meta.insert("deletionTimestamp".into(), json!(now()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            if let Some(g) = meta.get("generation").and_then(Value::as_i64) {
                meta.insert("generation".into(), json!(g + 1));
            }
            if is_namespace {
                new["status"] = json!({"phase": "Terminating"});
            }
            let committed = self.commit(key.clone(), new);
            if is_namespace {
                self.delete_namespace_contents(&key.name);
                return self.current(key).unwrap_or(committed);
            }
            return committed;
        }
        self.remove(key).unwrap_or(Value::Null)
    }

    fn delete_namespace_contents(&mut self, namespace: &str) {
        let keys: Vec<ObjKey> = self
            .objects
            .keys()
            .filter(|k| k.namespace == namespace)
            .cloned()
            .collect();
        for k in keys {
            self.delete_key(&k);
        }
        self.maybe_finish_namespace(namespace);
    }

    fn maybe_finish_namespace(&mut self, namespace: &str) {
        let key = ObjKey {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: namespace.into(),
        };
        let terminating = self
            .objects
            .get(&key)
            .is_some_and(|ns| ns.pointer("/metadata/deletionTimestamp").is_some());
        if terminating && !self.objects.keys().any(|k| k.namespace == namespace) {
            self.remove(&key);
        }
    }

    /// Garbage collection and other clean-up once an object is gone.
    fn after_removal(&mut self, key: &ObjKey, obj: &Value) {
        if key.group == "apiextensions.k8s.io" && key.plural == "customresourcedefinitions" {
            self.registry.remove_crd(&key.name);
            if let Ok(types) = resource::crd_types(obj)
                && let Some(t) = types.first()
            {
                let instances: Vec<ObjKey> = self
                    .objects
                    .keys()
                    .filter(|k| k.same_resource(t))
                    .cloned()
                    .collect();
                for k in instances {
                    self.remove(&k);
                }
            }
        }
        if !key.namespace.is_empty() {
            self.maybe_finish_namespace(&key.namespace);
            let published = (key.plural == "configmaps" && key.name == ROOT_CA_CONFIGMAP)
                || (key.plural == "serviceaccounts" && key.name == "default");
            if key.group.is_empty() && published {
                self.publish_namespace_defaults(&key.namespace);
            }
        }
        let Some(uid) = meta_str(obj, "uid").map(String::from) else {
            return;
        };
        let orphan = self.orphaned.remove(&uid);
        let live: HashSet<String> = self
            .objects
            .values()
            .filter_map(|o| meta_str(o, "uid").map(String::from))
            .collect();
        let plan: Vec<(ObjKey, GcAction)> = self
            .objects
            .iter()
            .filter_map(|(k, o)| gc::decide(o, &uid, &live, orphan).map(|a| (k.clone(), a)))
            .collect();
        for (k, action) in plan {
            match action {
                GcAction::Delete => {
                    self.delete_key(&k);
                }
                GcAction::DropOwnerRefs(uids) => {
                    if let Some(old) = self.current(&k) {
                        let mut new = old.clone();
                        gc::drop_owner_refs(&mut new, &uids);
                        if let Some(rt) = self.registry.find_any_version(&k.group, &k.plural) {
                            let opts = WriteOptions {
                                manager: "kube-controller-manager".into(),
                                ..Default::default()
                            };
                            let _ = self.finish_write(
                                &rt,
                                k.clone(),
                                Some(old),
                                new,
                                Managed::Track,
                                &opts,
                            );
                        }
                    }
                }
            }
        }
    }

    /// Internal read for simulation hooks (not counted).
    pub(crate) fn raw(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let rt = self.registry.find_any_version(group, plural)?;
        self.objects
            .get(&ObjKey::new(&rt, namespace, name))
            .map(|o| Self::render(&rt, o))
    }

    /// Registers CRDs from YAML documents (as a create-or-update by `kubesim`).
    pub(crate) fn install_crd(&mut self, doc: Value) -> Result<(), ApiError> {
        let rt = self
            .registry
            .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .ok_or_else(ApiError::no_route)?;
        let name = meta_str(&doc, "name").unwrap_or("").to_string();
        let opts = WriteOptions {
            manager: "kubesim".into(),
            ..Default::default()
        };
        if self.objects.contains_key(&ObjKey::new(&rt, "", &name)) {
            let mut body = doc;
            if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            self.update(&rt, "", &name, body, &opts)?;
        } else {
            self.create(&rt, "", doc, &opts)?;
        }
        Ok(())
    }
}

/// A Secret's `stringData` is write-only: the API server merges it into
/// `data` (base64, winning over a `data` key of the same name) and never
/// stores or returns it.
fn fold_string_data(secret: &mut Value) {
    use base64::Engine as _;
    let Some(Value::Object(string_data)) =
        secret.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    let data = secret
        .as_object_mut()
        .expect("a Secret is an object")
        .entry("data")
        .or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    let data = data.as_object_mut().expect("just made an object");
    for (key, value) in string_data {
        let text = value.as_str().unwrap_or_default();
        data.insert(
            key,
            json!(base64::engine::general_purpose::STANDARD.encode(text)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State::new()
    }

    fn cm_type(s: &State) -> Arc<ResourceType> {
        s.resolve("", "v1", "configmaps").unwrap()
    }

    fn opts() -> WriteOptions {
        WriteOptions {
            manager: "test".into(),
            ..Default::default()
        }
    }

    #[test]
    fn create_assigns_uid_rv_and_timestamps() {
        let mut s = state();
        let rt = cm_type(&s);
        let o = s
            .create(
                &rt,
                "default",
                json!({"metadata": {"name": "a"}, "data": {"k": "v"}}),
                &opts(),
            )
            .unwrap();
        assert!(meta_str(&o, "uid").is_some());
        assert_eq!(
            meta_str(&o, "resourceVersion"),
            Some(s.rv.to_string().as_str())
        );
        assert!(
            o.pointer("/metadata/managedFields/0/fieldsV1/f:data/f:k")
                .is_some()
        );
    }

    #[test]
    fn noop_update_keeps_resource_version() {
        let mut s = state();
        let rt = cm_type(&s);
        let o = s
            .create(
                &rt,
                "default",
                json!({"metadata": {"name": "a"}, "data": {"k": "v"}}),
                &opts(),
            )
            .unwrap();
        let rv = s.rv;
        let o2 = s.update(&rt, "default", "a", o.clone(), &opts()).unwrap();
        assert_eq!(s.rv, rv);
        assert_eq!(
            o2["metadata"]["resourceVersion"],
            o["metadata"]["resourceVersion"]
        );
    }

    #[test]
    fn history_replays_after_a_version_and_compaction_expires_it() {
        let mut s = state();
        let rt = cm_type(&s);
        let start = s.rv;
        s.create(&rt, "default", json!({"metadata": {"name": "a"}}), &opts())
            .unwrap();
        assert_eq!(s.events_since(start).unwrap().len(), 1);
        s.compact();
        assert!(s.events_since(start).is_err());
        assert!(s.events_since(s.rv).unwrap().is_empty());
    }

    #[test]
    fn list_pages_with_continue_tokens() {
        let mut s = state();
        let rt = cm_type(&s);
        for n in ["a", "b", "c"] {
            s.create(&rt, "default", json!({"metadata": {"name": n}}), &opts())
                .unwrap();
        }
        let mut lo = ListOptions {
            namespace: Some("default".into()),
            limit: Some(2),
            ..Default::default()
        };
        let page = s.list(&rt, &lo).unwrap();
        assert_eq!(page["items"].as_array().unwrap().len(), 2);
        lo.continue_token = page["metadata"]["continue"].as_str().map(String::from);
        let page2 = s.list(&rt, &lo).unwrap();
        assert_eq!(page2["items"][0]["metadata"]["name"], "c");
        assert!(page2["metadata"].get("continue").is_none());
    }
}
