//! The operator's watch caches, each object kept as deflated JSON and
//! decoded when a reconcile asks for it: the ShopRegions
//! ([`PackedShopRegion`], the controller's own cache) and their children
//! ([`JsonCache`]). A fleet keeps them for the process' life, one
//! ShopRegion and five or six children per region of a shop: decoded, with
//! their maps and strings, the children alone added ~50 KiB of memory per
//! ShopRegion and a converged ShopRegion ~10 KiB; as JSON, ~10 KB and
//! ~4.4 KB; deflated one by one, ~4.5 KB and ~1.3 KB; deflated against an
//! object of their cache like them (`Packer`), ~1 KB and ~0.3 KB.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock, RwLock};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::watcher;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};
use tokio::sync::watch;

use crate::api::{ShopRegion, ShopRegionSpec, ShopRegionStatus};

/// One child kind's cache, filled by [`JsonCache::apply`] from a watch.
pub struct JsonCache<K> {
    state: Arc<RwLock<State>>,
    synced: watch::Sender<bool>,
    /// Why its watch failed last, until it lists again: what a reconcile
    /// waiting for the first list reports when it gives up.
    failure: Arc<RwLock<Option<WatchFailure>>>,
    /// What the cache need not keep of an object (applied before encoding).
    slim: fn(&mut K),
    packer: Arc<Packer>,
    _kind: PhantomData<fn() -> K>,
}

impl<K> Clone for JsonCache<K> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            synced: self.synced.clone(),
            failure: self.failure.clone(),
            slim: self.slim,
            packer: self.packer.clone(),
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
            packer: Arc::new(Packer::new()),
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
        Some((key(object), self.packer.pack(&json)?))
    }

    /// The object `name` in namespace `ns`, as last watched.
    pub fn get(&self, ns: &str, name: &str) -> Option<K> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let json = self
            .packer
            .unpack(state.objects.get(&format!("{ns}/{name}"))?)?;
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

/// A ShopRegion as the controller's cache keeps it: its metadata decoded
/// (the cache's keys, the reconcile triggers' predicates and the owner
/// references of its children read it), its shop's name (the peers of a
/// reconcile are found by it), and its spec and status as deflated JSON,
/// decoded by [`PackedShopRegion::unpack`] for the reconcile that needs
/// them. Decoded, a converged ShopRegion's conditions, health entries and
/// spec were the largest share of a fleet's memory that grows with it.
///
/// It is the same resource as [`ShopRegion`] to the API server and to
/// kube-runtime (kind, group, version, plural), so a watch of it is a watch
/// of ShopRegions.
#[derive(Clone)]
pub struct PackedShopRegion {
    metadata: ObjectMeta,
    shop: String,
    packed: Box<[u8]>,
}

/// What is deflated: all of a ShopRegion but its metadata.
#[derive(Serialize)]
struct Body<'a> {
    spec: &'a ShopRegionSpec,
    status: Option<&'a ShopRegionStatus>,
}

#[derive(Deserialize)]
struct OwnedBody {
    spec: ShopRegionSpec,
    status: Option<ShopRegionStatus>,
}

impl PackedShopRegion {
    /// `region` without what no reader needs ([`slim_for_cache`]); `None`
    /// if it does not encode (it was decoded from JSON a moment before).
    pub fn pack(mut region: ShopRegion) -> Option<Self> {
        slim_for_cache(&mut region);
        let json = serde_json::to_vec(&Body {
            spec: &region.spec,
            status: region.status.as_ref(),
        })
        .ok()?;
        Some(Self {
            shop: region.spec.shop.clone(),
            metadata: region.metadata,
            packed: SHOPREGIONS.pack(&json)?,
        })
    }

    /// The ShopRegion as watched (without what [`slim_for_cache`] drops);
    /// `None` only if the packed bytes were damaged in memory.
    pub fn unpack(&self) -> Option<ShopRegion> {
        let body: OwnedBody = serde_json::from_slice(&SHOPREGIONS.unpack(&self.packed)?).ok()?;
        let mut region =
            ShopRegion::new(&self.metadata.name.clone().unwrap_or_default(), body.spec);
        region.metadata = self.metadata.clone();
        region.status = body.status;
        Some(region)
    }

    /// `spec.shop`, without unpacking.
    pub fn shop(&self) -> &str {
        &self.shop
    }
}

impl std::fmt::Debug for PackedShopRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedShopRegion")
            .field("namespace", &self.metadata.namespace)
            .field("name", &self.metadata.name)
            .field("shop", &self.shop)
            .field("packed_bytes", &self.packed.len())
            .finish()
    }
}

impl Resource for PackedShopRegion {
    type DynamicType = ();
    type Scope = <ShopRegion as Resource>::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        ShopRegion::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        ShopRegion::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        ShopRegion::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        ShopRegion::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Decoded as a ShopRegion is, then packed: the watch's events are read
/// straight into the cache's form.
impl<'de> Deserialize<'de> for PackedShopRegion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let region = ShopRegion::deserialize(deserializer)?;
        Self::pack(region).ok_or_else(|| D::Error::custom("the ShopRegion does not encode"))
    }
}

/// Deflates JSON against a dictionary: the first JSON it packs, then the
/// first at least twice as long. The objects of one cache (one kind, and a
/// fleet's shops mostly made from one template) differ from each other in
/// a few names and numbers, so each packs to a few hundred bytes against
/// one like it: in a 300-shop fleet, a Deployment's 4.8 KB of JSON to
/// ~0.3 KB (~1.7 KB deflated alone), a converged ShopRegion's 4.4 KB to
/// ~0.3 KB (~1.3 KB). The second dictionary is for a cache whose first
/// object was created moments before the watch saw it: a ShopRegion
/// without a status (1.1 KB) left a converged one at ~0.8 KB. Each
/// dictionary never changes once set, and packed bytes never leave the
/// process, so every object unpacks against the one it was packed with (its
/// first byte says which).
struct Packer {
    first: OnceLock<Box<[u8]>>,
    grown: OnceLock<Box<[u8]>>,
}

impl Packer {
    const FIRST: u8 = 0;
    const GROWN: u8 = 1;

    const fn new() -> Self {
        Self {
            first: OnceLock::new(),
            grown: OnceLock::new(),
        }
    }

    fn pack(&self, json: &[u8]) -> Option<Box<[u8]>> {
        let first = self.first.get_or_init(|| json.into());
        match self.grown.get() {
            Some(grown) => deflate(Self::GROWN, json, grown),
            None if json.len() >= 2 * first.len() => {
                deflate(Self::GROWN, json, self.grown.get_or_init(|| json.into()))
            }
            None => deflate(Self::FIRST, json, first),
        }
    }

    fn unpack(&self, stored: &[u8]) -> Option<Vec<u8>> {
        let (which, deflated) = stored.split_first()?;
        let dictionary = match *which {
            Self::FIRST => self.first.get()?,
            Self::GROWN => self.grown.get()?,
            _ => return None,
        };
        inflate(deflated, dictionary)
    }
}

/// Every [`PackedShopRegion`]'s: the first ShopRegion this process packs.
static SHOPREGIONS: Packer = Packer::new();

// One compressor and one decompressor per thread, reset for each object: a
// fresh deflate state is some 300 KB, and allocating one per watch event (a
// Deployment's status moves with every pod of a rollout) fragmented the
// allocator's arenas by tens of MB in a 1,000-shop bootstrap. The default
// level: against a dictionary, ~100 µs for a Deployment, and a third
// smaller than the fastest level.
thread_local! {
    static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::default(), false));
    static INFLATE: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

/// `json` deflated against `dictionary`, after `which` (the dictionary's
/// number) and the length as 4 bytes.
fn deflate(which: u8, json: &[u8], dictionary: &[u8]) -> Option<Box<[u8]>> {
    let length = u32::try_from(json.len()).ok()?;
    DEFLATE.with_borrow_mut(|compress| {
        compress.reset();
        compress.set_dictionary(dictionary).ok()?;
        // Deflate's worst case is the input plus a few bytes per block.
        let mut out = Vec::with_capacity(5 + json.len() + json.len() / 100 + 64);
        out.push(which);
        out.extend_from_slice(&length.to_le_bytes());
        match compress.compress_vec(json, &mut out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => Some(out.into_boxed_slice()),
            _ => None,
        }
    })
}

/// What [`deflate`] made against `dictionary` (after its first byte), back
/// to JSON.
fn inflate(stored: &[u8], dictionary: &[u8]) -> Option<Vec<u8>> {
    let (length, deflated) = stored.split_first_chunk::<4>()?;
    let length = usize::try_from(u32::from_le_bytes(*length)).ok()?;
    INFLATE.with_borrow_mut(|decompress| {
        decompress.reset(false);
        decompress.set_dictionary(dictionary).ok()?;
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

    /// A secondary region of a shop coming up, as the API server shows it.
    fn shopregion_coming_up() -> ShopRegion {
        let mut region = crate::api::fixtures::acme_region("eu-west-1");
        region.metadata.namespace = Some("shop".into());
        region.metadata.managed_fields = Some(vec![Default::default()]);
        let waiting = "the order Deployment is created once everything its pods need is known; waiting for the database reader endpoint";
        let condition = |type_: &str, status: &str| {
            serde_json::json!({"type": type_, "status": status, "reason": "Pending",
                "message": waiting, "observedGeneration": 1,
                "lastTransitionTime": "2026-12-07T07:24:26Z"})
        };
        let health = |region: &str, verdict: &str| {
            serde_json::json!({"region": region, "verdict": verdict, "reason": "SignalsHealthy",
                "message": "database available; cache, endpoint up",
                "since": "2026-12-07T07:24:55.162614161Z",
                "endpoint": format!("acme-{region}.cluster-sim.{region}.rds.amazonaws.com:5432")})
        };
        region.status = Some(
            serde_json::from_value(serde_json::json!({
                "observedGeneration": 1,
                "conditions": [condition("Ready", "False"), condition("Reconciling", "True"),
                    condition("WorkloadReady", "False"), condition("DatabaseReady", "False")],
                "database": {"clusterIdentifier": "acme-eu-west-1", "readers": 0, "writer": false,
                    "globalClusterIdentifier": "acme-global"},
                "health": [health("us-east-1", "Healthy"), health("eu-west-1", "Healthy"),
                    health("ap-northeast-1", "Unhealthy")],
            }))
            .unwrap(),
        );
        region
    }

    #[test]
    fn a_cached_shopregion_reads_back_as_watched_but_for_what_the_cache_drops() {
        let watched = shopregion_coming_up();
        let json = serde_json::to_vec(&watched).unwrap();
        // Decoded from the watch's JSON, as the watcher does.
        let packed: PackedShopRegion = serde_json::from_slice(&json).unwrap();
        assert_eq!(packed.shop(), watched.spec.shop);
        assert_eq!(packed.meta().managed_fields, None);
        let unpacked = packed.unpack().unwrap();
        let mut expected = watched.clone();
        expected.metadata.managed_fields = None;
        assert_eq!(
            serde_json::to_value(&unpacked).unwrap(),
            serde_json::to_value(&expected).unwrap()
        );
        assert!(
            packed.packed.len() * 2 < json.len(),
            "{} bytes kept of {}",
            packed.packed.len(),
            json.len()
        );
    }

    #[test]
    fn a_damaged_cached_shopregion_does_not_unpack() {
        let mut packed = PackedShopRegion::pack(shopregion_coming_up()).unwrap();
        let half = packed.packed.len() / 2;
        packed.packed = packed.packed[..half].into();
        assert!(packed.unpack().is_none());
    }

    #[test]
    fn packed_json_reads_back_whole_and_an_object_like_the_first_packs_small() {
        // A shop's endpoints: what differs between two shops is the name.
        let endpoints = |shop: &str| {
            let mut object = configmap("topology", "eu-west-1");
            object.data = Some(
                (0..30)
                    .map(|i| {
                        let host = format!("{shop}-{i}.cluster-c9x{i}.eu-west-1.rds.amazonaws.com");
                        (format!("endpoint-{i}"), format!("{host}:{}", 5432 + i))
                    })
                    .collect(),
            );
            serde_json::to_vec(&object).unwrap()
        };
        let packer = Packer::new();
        let first = endpoints("acme");
        let stored = packer.pack(&first).unwrap();
        assert_eq!(packer.unpack(&stored).unwrap(), first);
        let like_the_first = endpoints("globex");
        let small = packer.pack(&like_the_first).unwrap();
        assert_eq!(packer.unpack(&small).unwrap(), like_the_first);
        let alone = {
            let mut encoder =
                flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
            std::io::Write::write_all(&mut encoder, &like_the_first).unwrap();
            encoder.finish().unwrap()
        };
        assert!(
            small.len() * 3 < alone.len(),
            "{} against the first, {} alone",
            small.len(),
            alone.len()
        );
        // Many in a row on one thread, against two dictionaries: the reused
        // state starts clean for each.
        let other = Packer::new();
        for value in ["a", "bb", ""] {
            let json = serde_json::to_vec(&configmap("t", value)).unwrap();
            let (one, two) = (packer.pack(&json).unwrap(), other.pack(&json).unwrap());
            assert_eq!(packer.unpack(&one).unwrap(), json);
            assert_eq!(other.unpack(&two).unwrap(), json);
        }
        assert_eq!(
            packer.unpack(&stored[..stored.len() - 1]),
            None,
            "truncated"
        );
        assert_eq!(Packer::new().unpack(&stored), None, "no dictionary yet");
    }

    #[test]
    fn objects_that_grew_pack_against_the_first_that_grew_and_earlier_ones_still_unpack() {
        // Created without its data, then filled in, as a ShopRegion is
        // created without a status.
        let created = serde_json::to_vec(&configmap("t", "")).unwrap();
        let filled = |shop: &str| {
            let mut object = configmap("t", "");
            object.data = Some(
                (0..20u64)
                    .map(|i| {
                        // Digits deflate cannot predict from each other, the
                        // same in every shop, as a template's values are.
                        let digits = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
                        (format!("{shop}-replica-{i}"), format!("{digits:016x}"))
                    })
                    .collect(),
            );
            serde_json::to_vec(&object).unwrap()
        };
        let packer = Packer::new();
        let first = packer.pack(&created).unwrap();
        let grown = packer.pack(&filled("acme")).unwrap();
        let like_it = packer.pack(&filled("globex")).unwrap();
        assert_eq!(packer.unpack(&first).unwrap(), created);
        assert_eq!(packer.unpack(&grown).unwrap(), filled("acme"));
        assert_eq!(packer.unpack(&like_it).unwrap(), filled("globex"));
        let against_the_first = deflate(Packer::FIRST, &filled("globex"), &created).unwrap();
        assert!(
            like_it.len() * 2 < against_the_first.len(),
            "{} against the first that grew, {} against the first",
            like_it.len(),
            against_the_first.len()
        );
        let mut unknown = first.to_vec();
        unknown[0] = 7;
        assert_eq!(packer.unpack(&unknown), None, "no such dictionary");
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
