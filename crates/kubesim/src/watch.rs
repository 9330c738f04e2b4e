//! Watch streams: newline-delimited JSON events, resumption from the event
//! history, selector transitions, bookmarks, timeouts and 410 Gone.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::error::ApiError;
use crate::resource::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{EventType, State, Store, StoredEvent};

/// A parsed watch request.
#[derive(Debug, Clone)]
pub(crate) struct WatchRequest {
    pub rt: Arc<ResourceType>,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub resource_version: Option<String>,
    pub bookmarks: bool,
    pub timeout: Option<Duration>,
    pub send_initial_events: bool,
}

impl WatchRequest {
    fn selects(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    fn in_scope(&self, ev: &StoredEvent) -> bool {
        ev.key.group == self.rt.group
            && ev.key.plural == self.rt.plural
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == ev.key.namespace)
    }

    /// What a watcher with this request sees of a stored event, if anything.
    /// An object that stops matching the selectors is sent as DELETED (its
    /// previous state at the new resource version), one that starts matching
    /// as ADDED. The stored version is lent, not copied: most views only
    /// become a line.
    pub(crate) fn view<'e>(&self, ev: &'e StoredEvent) -> Option<(EventType, Cow<'e, Value>)> {
        if !self.in_scope(ev) {
            return None;
        }
        let now = self.selects(&ev.object);
        let before = ev.prev.as_ref().is_some_and(|p| self.selects(p));
        let current = || Cow::Borrowed(&*ev.object);
        match ev.event_type {
            EventType::Added => now.then(|| (EventType::Added, current())),
            EventType::Deleted => (now || before).then(|| (EventType::Deleted, current())),
            EventType::Modified => match (before, now) {
                (true, true) => Some((EventType::Modified, current())),
                (false, true) => Some((EventType::Added, current())),
                (true, false) => {
                    let mut old = ev.prev.as_deref().cloned().unwrap_or(Value::Null);
                    old["metadata"]["resourceVersion"] = json!(ev.rv.to_string());
                    Some((EventType::Deleted, Cow::Owned(old)))
                }
                (false, false) => None,
            },
        }
    }

    fn line(&self, event_type: &str, object: &Value) -> Bytes {
        let object = State::render(&self.rt, object);
        let mut s = json!({"type": event_type, "object": object}).to_string();
        s.push('\n');
        Bytes::from(s)
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
        if initial_events_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj =
            json!({"kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": meta});
        let mut s = json!({"type": "BOOKMARK", "object": obj}).to_string();
        s.push('\n');
        Bytes::from(s)
    }
}

fn error_line(err: &ApiError) -> Bytes {
    let mut s = json!({"type": "ERROR", "object": err.to_status()}).to_string();
    s.push('\n');
    Bytes::from(s)
}

/// The first lines of a watch, computed under the lock, and where the live part starts.
struct Start {
    lines: Vec<Bytes>,
    from_rv: u64,
    events: broadcast::Receiver<Arc<StoredEvent>>,
}

fn start(
    state: &State,
    req: &WatchRequest,
    events: broadcast::Receiver<Arc<StoredEvent>>,
) -> Result<Start, ApiError> {
    let rv = req.resource_version.as_deref().unwrap_or("");
    let mut lines = Vec::new();
    let from_rv = match rv {
        "" | "0" => None,
        other => Some(
            other
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?,
        ),
    };
    let from_rv = match from_rv {
        Some(v) if !req.send_initial_events => v,
        // Unset, "0" or sendInitialEvents: synthetic ADDED events for the current state.
        _ => {
            for (_, obj) in
                state.matching(&req.rt, req.namespace.as_deref(), &req.labels, &req.fields)
            {
                lines.push(req.line("ADDED", obj));
            }
            if req.send_initial_events && req.bookmarks {
                lines.push(req.bookmark(state.rv, true));
            }
            // The initial state is the current one; the subscription delivers what follows.
            return Ok(Start {
                lines,
                from_rv: state.rv,
                events,
            });
        }
    };
    match state.events_since(from_rv) {
        Ok(replay) => {
            for ev in replay {
                if let Some((t, obj)) = req.view(&ev) {
                    lines.push(req.line(t.as_str(), &obj));
                }
            }
            // Everything up to `state.rv` was replayed; the subscription delivers what follows.
            Ok(Start {
                lines,
                from_rv: state.rv,
                events,
            })
        }
        Err(oldest) => Err(ApiError::too_old(from_rv, oldest)),
    }
}

/// Starts a watch; the returned receiver yields the response body chunks.
pub(crate) fn spawn(store: Arc<Store>, req: WatchRequest) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let (setup, interval) = {
        let state = store.lock();
        let events = state.subscribe();
        (start(&state, &req, events), state.bookmark_interval)
    };
    let mut close = store.close_watches.subscribe();
    close.mark_unchanged();
    tokio::spawn(async move {
        let Start {
            lines,
            from_rv,
            mut events,
        } = match setup {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(error_line(&e)).await;
                return;
            }
        };
        for l in lines {
            if tx.send(l).await.is_err() {
                return;
            }
        }
        let mut last_rv = from_rv;
        let deadline =
            tokio::time::sleep(req.timeout.unwrap_or(Duration::from_secs(3600 * 24 * 365)));
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= last_rv {
                            continue;
                        }
                        last_rv = ev.rv;
                        if let Some((t, obj)) = req.view(&ev)
                            && tx.send(req.line(t.as_str(), &obj)).await.is_err()
                        {
                            return;
                        }
                    }
                    // Lagging behind or shutting down: end the stream, the client resumes.
                    Err(_) => return,
                },
                _ = close.changed() => return,
                _ = &mut deadline => return,
                _ = ticker.tick(), if req.bookmarks => {
                    if tx.send(req.bookmark(last_rv, false)).await.is_err() {
                        return;
                    }
                }
                _ = tx.closed() => return,
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Registry;
    use crate::store::ObjKey;

    fn req(labels: &str) -> WatchRequest {
        WatchRequest {
            rt: Registry::with_builtins()
                .find("", "v1", "configmaps")
                .unwrap(),
            namespace: Some("ns".into()),
            labels: LabelSelector::parse(labels).unwrap(),
            fields: FieldSelector::default(),
            resource_version: None,
            bookmarks: false,
            timeout: None,
            send_initial_events: false,
        }
    }

    fn ev(t: EventType, obj: Value, prev: Option<Value>) -> StoredEvent {
        StoredEvent {
            rv: 7,
            key: ObjKey {
                group: "".into(),
                plural: "configmaps".into(),
                namespace: "ns".into(),
                name: "a".into(),
            },
            event_type: t,
            object: Arc::new(obj),
            prev: prev.map(Arc::new),
        }
    }

    fn cm(app: &str) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "resourceVersion": "7", "labels": {"app": app}}})
    }

    #[test]
    fn object_leaving_the_selector_is_deleted() {
        let r = req("app=web");
        let event = ev(EventType::Modified, cm("db"), Some(cm("web")));
        let (t, obj) = r.view(&event).unwrap();
        assert_eq!(t, EventType::Deleted);
        assert_eq!(obj["metadata"]["labels"]["app"], "web");
        assert_eq!(obj["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn object_entering_the_selector_is_added() {
        let r = req("app=web");
        let (t, _) = r
            .view(&ev(EventType::Modified, cm("web"), Some(cm("db"))))
            .unwrap();
        assert_eq!(t, EventType::Added);
        assert!(
            r.view(&ev(EventType::Modified, cm("db"), Some(cm("db"))))
                .is_none()
        );
    }

    #[test]
    fn other_namespaces_are_ignored() {
        let mut r = req("");
        r.namespace = Some("other".into());
        assert!(r.view(&ev(EventType::Added, cm("web"), None)).is_none());
    }
}
