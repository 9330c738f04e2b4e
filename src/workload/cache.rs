//! The watch caches of a ShopRegion's children. Each object is kept as the
//! deflated JSON of what the workload concern reads, and decoded when a
//! reconcile asks for it. A fleet keeps five or six children per
//! ShopRegion for the process' life: decoded, with their maps and strings,
//! they added ~50 KiB of memory per ShopRegion; as JSON, ~10 KB (a
//! Deployment alone is ~4.8 KB); deflated, ~4.3 KB. The children of one
//! shop differ in a few names, so they compress well even one by one.

use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use kube::Resource;
use kube::runtime::watcher;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// One child kind's cache, filled by [`JsonCache::apply`] from a watch.
pub struct JsonCache<K> {
    state: Arc<RwLock<State>>,
    synced: watch::Sender<bool>,
    /// Why its watch failed last, until it lists again: what a reconcile
    /// waiting for the first list reports when it gives up.
    failure: Arc<RwLock<Option<WatchFailure>>>,
    /// What the cache need not keep of an object (applied before encoding).
    slim: fn(&mut K),
    _kind: PhantomData<fn() -> K>,
}

impl<K> Clone for JsonCache<K> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            synced: self.synced.clone(),
            failure: self.failure.clone(),
            slim: self.slim,
            _kind: PhantomData,
        }
    }
}

#[derive(Default)]
struct State {
    objects: HashMap<String, Box<[u8]>>,
    /// A relist under way: the objects it has listed so far. The previous
    /// list keeps answering until it is complete.
    relisting: Option<HashMap<String, Box<[u8]>>>,
}

impl<K> JsonCache<K>
where
    K: Resource + Clone + Serialize + DeserializeOwned,
{
    pub fn new(slim: fn(&mut K)) -> Self {
        Self {
            state: Arc::default(),
            synced: watch::Sender::new(false),
            failure: Arc::default(),
            slim,
            _kind: PhantomData,
        }
    }

    /// Takes in one watch event.
    pub fn apply(&self, event: &watcher::Event<K>) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Init => state.relisting = Some(HashMap::new()),
            watcher::Event::InitApply(object) => {
                let entry = self.entry(object);
                state.relisting.get_or_insert_default().extend(entry);
            }
            watcher::Event::InitDone => {
                state.objects = state.relisting.take().unwrap_or_default();
                drop(state);
                *self.failure.write().unwrap_or_else(|e| e.into_inner()) = None;
                self.synced.send_replace(true);
            }
            watcher::Event::Apply(object) => {
                let entry = self.entry(object);
                state.objects.extend(entry);
            }
            watcher::Event::Delete(object) => {
                state.objects.remove(&key(object));
            }
        }
    }

    fn entry(&self, object: &K) -> Option<(String, Box<[u8]>)> {
        let mut kept = object.clone();
        (self.slim)(&mut kept);
        // An object that does not encode is left out: the reconcile then
        // applies it again, which is correct if wasteful.
        let json = serde_json::to_vec(&kept).ok()?;
        Some((key(object), deflate(&json)?))
    }

    /// The object `name` in namespace `ns`, as last watched.
    pub fn get(&self, ns: &str, name: &str) -> Option<K> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let json = inflate(state.objects.get(&format!("{ns}/{name}"))?)?;
        serde_json::from_slice(&json).ok()
    }

    /// Takes in a failure of its watch (the watcher retries it).
    pub fn failed(&self, error: &watcher::Error) {
        *self.failure.write().unwrap_or_else(|e| e.into_inner()) = Some(WatchFailure::of(error));
    }

    /// Why its watch failed last, since it last listed.
    pub fn failure(&self) -> Option<WatchFailure> {
        self.failure
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether it holds its first complete list.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits for the first complete list.
    pub async fn synced(&self) {
        let mut synced = self.synced.subscribe();
        // The sender lives as long as this cache: the wait ends only with
        // the first list.
        let _ = synced.wait_for(|synced| *synced).await;
    }

    /// How many objects the cache holds.
    pub fn len(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .objects
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a watch failed, as the person fixing it needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchFailure {
    pub message: String,
    /// The API server refused the list or watch (HTTP 403): a permission
    /// is missing, and the message names it.
    pub forbidden: bool,
}

impl WatchFailure {
    pub fn of(error: &watcher::Error) -> Self {
        let status = match error {
            watcher::Error::InitialListFailed(kube::Error::Api(status))
            | watcher::Error::WatchStartFailed(kube::Error::Api(status))
            | watcher::Error::WatchFailed(kube::Error::Api(status)) => Some(status.as_ref()),
            watcher::Error::WatchError(status) => Some(status.as_ref()),
            _ => None,
        };
        match status {
            Some(status) if status.code == 403 => Self {
                message: status.message.clone(),
                forbidden: true,
            },
            _ => Self {
                message: error.to_string(),
                forbidden: false,
            },
        }
    }
}

/// Where client-side apply keeps the last applied object.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What the watch caches (ShopRegions and their children) do not keep:
/// nothing reads it, and it is kept for every object for the process' life.
/// managedFields (the appliers of spec and status, over 40 % of a converged
/// ShopRegion's JSON), and the copy of the whole applied object that
/// `kubectl apply` and Argo CD's client-side apply keep in an annotation
/// (every change of it comes with a spec change, a new generation).
pub fn slim_for_cache<K: Resource>(object: &mut K) {
    let metadata = object.meta_mut();
    metadata.managed_fields = None;
    if let Some(annotations) = metadata.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

// One compressor and one decompressor per thread, reset for each object: a
// fresh deflate state is some 300 KB, and allocating one per watch event (a
// Deployment's status moves with every pod of a rollout) fragmented the
// allocator's arenas by tens of MB in a 1,000-shop bootstrap.
thread_local! {
    static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::fast(), false));
    static INFLATE: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

/// `json` deflated (the fastest level: a Deployment's status moves with
/// every pod during a rollout), after its length as 4 bytes.
fn deflate(json: &[u8]) -> Option<Box<[u8]>> {
    let length = u32::try_from(json.len()).ok()?;
    DEFLATE.with_borrow_mut(|compress| {
        compress.reset();
        // Deflate's worst case is the input plus a few bytes per block.
        let mut out = Vec::with_capacity(4 + json.len() + json.len() / 100 + 64);
        out.extend_from_slice(&length.to_le_bytes());
        match compress.compress_vec(json, &mut out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => Some(out.into_boxed_slice()),
            _ => None,
        }
    })
}

/// What [`deflate`] made, back to JSON.
fn inflate(stored: &[u8]) -> Option<Vec<u8>> {
    let (length, deflated) = stored.split_first_chunk::<4>()?;
    let length = usize::try_from(u32::from_le_bytes(*length)).ok()?;
    INFLATE.with_borrow_mut(|decompress| {
        decompress.reset(false);
        let mut json = Vec::with_capacity(length);
        match decompress.decompress_vec(deflated, &mut json, FlushDecompress::Finish) {
            Ok(Status::StreamEnd) if json.len() == length => Some(json),
            _ => None,
        }
    })
}

fn key<K: Resource>(object: &K) -> String {
    let meta = object.meta();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::*;

    fn configmap(name: &str, value: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                managed_fields: Some(vec![Default::default()]),
                ..ObjectMeta::default()
            },
            data: Some([("writer".to_string(), value.to_string())].into()),
            ..ConfigMap::default()
        }
    }

    fn slim(object: &mut ConfigMap) {
        object.metadata.managed_fields = None;
    }

    #[test]
    fn a_watched_object_reads_back_without_what_the_cache_drops() {
        let cache = JsonCache::new(slim);
        cache.apply(&watcher::Event::Apply(configmap("topology", "us-east-1")));
        let read = cache.get("shop", "topology").unwrap();
        assert_eq!(read.data.unwrap()["writer"], "us-east-1");
        assert_eq!(read.metadata.managed_fields, None);
        assert!(cache.get("other", "topology").is_none());
    }

    #[test]
    fn deflated_json_reads_back_whole_and_smaller() {
        let json = serde_json::to_vec(&configmap("topology", &"us-east-1 ".repeat(200))).unwrap();
        let stored = deflate(&json).unwrap();
        assert!(
            stored.len() * 4 < json.len(),
            "{} of {}",
            stored.len(),
            json.len()
        );
        assert_eq!(inflate(&stored).unwrap(), json);
        // Many in a row on one thread: the reused state starts clean.
        for value in ["a", "bb", ""] {
            let json = serde_json::to_vec(&configmap("t", value)).unwrap();
            assert_eq!(inflate(&deflate(&json).unwrap()).unwrap(), json);
        }
        assert_eq!(inflate(&stored[..stored.len() - 1]), None, "truncated");
    }

    #[test]
    fn a_change_replaces_and_a_deletion_removes() {
        let cache = JsonCache::new(slim);
        cache.apply(&watcher::Event::Apply(configmap("topology", "us-east-1")));
        cache.apply(&watcher::Event::Apply(configmap("topology", "eu-west-1")));
        let read = cache.get("shop", "topology").unwrap();
        assert_eq!(read.data.unwrap()["writer"], "eu-west-1");
        cache.apply(&watcher::Event::Delete(configmap("topology", "eu-west-1")));
        assert!(cache.get("shop", "topology").is_none());
    }

    #[tokio::test]
    async fn a_relist_replaces_the_cache_only_once_complete() {
        let cache = JsonCache::new(slim);
        let waiting = tokio::spawn({
            let cache = cache.clone();
            async move { cache.synced().await }
        });
        cache.apply(&watcher::Event::Init);
        cache.apply(&watcher::Event::InitApply(configmap("gone-later", "x")));
        cache.apply(&watcher::Event::InitDone);
        waiting.await.unwrap();

        cache.apply(&watcher::Event::Init);
        cache.apply(&watcher::Event::InitApply(configmap("topology", "y")));
        assert!(
            cache.get("shop", "gone-later").is_some(),
            "the old list answers until the new one is complete"
        );
        cache.apply(&watcher::Event::InitDone);
        assert!(cache.get("shop", "gone-later").is_none());
        assert_eq!(cache.len(), 1);
    }
}
