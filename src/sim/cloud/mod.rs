//! A simulated AWS: deterministic, on virtual time, with AWS's documented
//! rules and state machines, fault injection and a call log.
//!
//! State machines are evaluated lazily: an operation schedules its
//! completion at `now + duration`, and every call first applies whatever
//! has come due on the [`VirtualClock`]. Nothing runs in the background, so
//! a simulation replays identically.
//!
//! The simulator knows AWS, not shopfleet: it has no idea of plans, specs
//! or identifiers beyond what the API calls carry.

mod aurora;
mod elasticache;
mod persist;

use crate::cloud::aurora::port::DESCRIBE_PAGE;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::clock::Clock;
use crate::cloud::aurora::port::{AuroraPort, Cluster, GlobalCluster, Instance};
use crate::cloud::elasticache::port::{ElastiCachePort, GlobalReplicationGroup, ReplicationGroup};
use crate::cloud::{CloudError, TransientKind};

use super::clock::VirtualClock;

pub use aurora::FailoverRecord;
pub use elasticache::{CacheFailoverRecord, global_datastore_prefix};

/// How long AWS takes. Where AWS publishes a figure the default follows it;
/// where it publishes none the default is a typical observed value or a
/// round assumption, and says so. `docs/simulation.md` cites the source of
/// each one. Scenarios can shorten or stretch any of them by name (see
/// [`SimDurations::fields_mut`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SimDurations {
    /// `CreateDBCluster` of a primary (storage volume, no instances):
    /// typically several minutes.
    pub cluster_create: Duration,
    /// `CreateDBCluster` of a secondary joining a global database: the
    /// storage is seeded across regions, so longer than a primary.
    pub secondary_cluster_create: Duration,
    /// `CreateDBInstance` in an Aurora cluster: typically 8–10 minutes.
    pub instance_create: Duration,
    /// `DeleteDBInstance`.
    pub instance_delete: Duration,
    /// `DeleteDBCluster` once its instances are gone.
    pub cluster_delete: Duration,
    /// `ModifyDBCluster` with a minor engine-version upgrade, and
    /// `ModifyGlobalCluster` with a new engine version (every member at once).
    pub engine_upgrade: Duration,
    /// `CreateGlobalCluster` from an existing cluster.
    pub global_create: Duration,
    /// `DeleteGlobalCluster` of an empty global cluster.
    pub global_delete: Duration,
    /// `RemoveFromGlobalCluster`: the cluster detaches and becomes standalone.
    pub global_detach: Duration,
    /// `FailoverGlobalCluster` with `AllowDataLoss`: AWS targets an RTO of
    /// about a minute.
    pub global_failover: Duration,
    /// `SwitchoverGlobalCluster`, before waiting for the target to catch up.
    pub global_switchover: Duration,
    /// Steady-state `AuroraGlobalDBReplicationLag`: typically well under a
    /// second.
    pub replication_lag: Duration,
    /// `CreateReplicationGroup` of a primary until `available`. AWS gives no
    /// figure (its getting-started guide: "several minutes"); 10 minutes is
    /// an assumption.
    pub cache_group_create: Duration,
    /// `CreateReplicationGroup` of a secondary until it is `associated`
    /// with its Global Datastore: the primary's data is copied across
    /// regions first. No AWS figure; 15 minutes is an assumption.
    pub cache_secondary_create: Duration,
    /// `CreateGlobalReplicationGroup` from an existing primary. No AWS
    /// figure; 5 minutes is an assumption.
    pub cache_global_create: Duration,
    /// `IncreaseReplicaCount` / `DecreaseReplicaCount` by one node per
    /// shard. No AWS figure; 10 minutes is an assumption.
    pub cache_replica_change: Duration,
    /// `ModifyReplicationGroup` of Multi-AZ and automatic failover. No AWS
    /// figure; 2 minutes is an assumption.
    pub cache_modify: Duration,
    /// `DisassociateGlobalReplicationGroup` until the secondary stands
    /// alone. No AWS figure; 5 minutes is an assumption.
    pub cache_disassociate: Duration,
    /// `DeleteGlobalReplicationGroup` of a Global Datastore with only its
    /// primary. No AWS figure; 2 minutes is an assumption.
    pub cache_global_delete: Duration,
    /// `DeleteReplicationGroup`. No AWS figure; 5 minutes is an assumption.
    pub cache_group_delete: Duration,
    /// `FailoverGlobalReplicationGroup`: AWS gives promotion of a secondary
    /// an RTO of about a minute.
    pub cache_failover: Duration,
    /// Steady-state `GlobalDatastoreReplicationLag`: AWS documents
    /// cross-Region replication as typically under one second; the
    /// simulation reports that bound.
    pub cache_replication_lag: Duration,
}

impl Default for SimDurations {
    fn default() -> Self {
        Self {
            cluster_create: Duration::from_secs(10 * 60),
            secondary_cluster_create: Duration::from_secs(15 * 60),
            instance_create: Duration::from_secs(9 * 60),
            instance_delete: Duration::from_secs(6 * 60),
            cluster_delete: Duration::from_secs(5 * 60),
            engine_upgrade: Duration::from_secs(15 * 60),
            global_create: Duration::from_secs(2 * 60),
            global_delete: Duration::from_secs(60),
            global_detach: Duration::from_secs(3 * 60),
            global_failover: Duration::from_secs(60),
            global_switchover: Duration::from_secs(2 * 60),
            replication_lag: Duration::from_millis(150),
            cache_group_create: Duration::from_secs(10 * 60),
            cache_secondary_create: Duration::from_secs(15 * 60),
            cache_global_create: Duration::from_secs(5 * 60),
            cache_replica_change: Duration::from_secs(10 * 60),
            cache_modify: Duration::from_secs(2 * 60),
            cache_disassociate: Duration::from_secs(5 * 60),
            cache_global_delete: Duration::from_secs(2 * 60),
            cache_group_delete: Duration::from_secs(5 * 60),
            cache_failover: Duration::from_secs(60),
            cache_replication_lag: Duration::from_secs(1),
        }
    }
}

impl SimDurations {
    /// Every duration with the name scenarios and reports use for it.
    pub fn fields(&self) -> Vec<(&'static str, Duration)> {
        let mut copy = self.clone();
        copy.fields_mut()
            .into_iter()
            .map(|(name, value)| (name, *value))
            .collect()
    }

    /// Every duration by name, to override: the one table of names. The
    /// destructuring lists every field, so a duration added to the struct
    /// does not compile until it has a name here (and is then overridable
    /// and reported at once).
    pub fn fields_mut(&mut self) -> Vec<(&'static str, &mut Duration)> {
        let SimDurations {
            cluster_create,
            secondary_cluster_create,
            instance_create,
            instance_delete,
            cluster_delete,
            engine_upgrade,
            global_create,
            global_delete,
            global_detach,
            global_failover,
            global_switchover,
            replication_lag,
            cache_group_create,
            cache_secondary_create,
            cache_global_create,
            cache_replica_change,
            cache_modify,
            cache_disassociate,
            cache_global_delete,
            cache_group_delete,
            cache_failover,
            cache_replication_lag,
        } = self;
        vec![
            ("clusterCreate", cluster_create),
            ("secondaryClusterCreate", secondary_cluster_create),
            ("instanceCreate", instance_create),
            ("instanceDelete", instance_delete),
            ("clusterDelete", cluster_delete),
            ("engineUpgrade", engine_upgrade),
            ("globalCreate", global_create),
            ("globalDelete", global_delete),
            ("globalDetach", global_detach),
            ("globalFailover", global_failover),
            ("globalSwitchover", global_switchover),
            ("replicationLag", replication_lag),
            ("cacheGroupCreate", cache_group_create),
            ("cacheSecondaryCreate", cache_secondary_create),
            ("cacheGlobalCreate", cache_global_create),
            ("cacheReplicaChange", cache_replica_change),
            ("cacheModify", cache_modify),
            ("cacheDisassociate", cache_disassociate),
            ("cacheGlobalDelete", cache_global_delete),
            ("cacheGroupDelete", cache_group_delete),
            ("cacheFailover", cache_failover),
            ("cacheReplicationLag", cache_replication_lag),
        ]
    }

    /// Sets one duration by its name; `false` when no duration has it.
    pub fn set(&mut self, name: &str, value: Duration) -> bool {
        match self.fields_mut().into_iter().find(|(n, _)| *n == name) {
            Some((_, field)) => {
                *field = value;
                true
            }
            None => false,
        }
    }
}

/// An API operation, as AWS names it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Op {
    DescribeGlobalClusters,
    CreateGlobalCluster,
    ModifyGlobalCluster,
    DeleteGlobalCluster,
    RemoveFromGlobalCluster,
    FailoverGlobalCluster,
    SwitchoverGlobalCluster,
    DescribeDBClusters,
    CreateDBCluster,
    ModifyDBCluster,
    DeleteDBCluster,
    AddTagsToResource,
    DescribeDBInstances,
    CreateDBInstance,
    DeleteDBInstance,
    ModifyDBInstance,
    DescribeDBSubnetGroups,
    DescribeDBEngineVersions,
    GetMetricData,
    DescribeGlobalReplicationGroups,
    CreateGlobalReplicationGroup,
    DeleteGlobalReplicationGroup,
    DisassociateGlobalReplicationGroup,
    FailoverGlobalReplicationGroup,
    DescribeReplicationGroups,
    CreateReplicationGroup,
    ModifyReplicationGroup,
    DeleteReplicationGroup,
    IncreaseReplicaCount,
    DecreaseReplicaCount,
    ListTagsForResource,
    DescribeCacheSubnetGroups,
    DescribeCacheClusters,
    /// ElastiCache's `AddTagsToResource` (the RDS one is
    /// [`Op::AddTagsToResource`]); both report the same name.
    CacheAddTagsToResource,
}

impl Op {
    /// Every operation; keep in step with the enum (`from_name` reads it).
    pub const ALL: [Op; 33] = [
        Op::DescribeGlobalClusters,
        Op::CreateGlobalCluster,
        Op::DeleteGlobalCluster,
        Op::RemoveFromGlobalCluster,
        Op::FailoverGlobalCluster,
        Op::SwitchoverGlobalCluster,
        Op::DescribeDBClusters,
        Op::CreateDBCluster,
        Op::ModifyDBCluster,
        Op::DeleteDBCluster,
        Op::AddTagsToResource,
        Op::DescribeDBInstances,
        Op::CreateDBInstance,
        Op::DeleteDBInstance,
        Op::ModifyDBInstance,
        Op::DescribeDBSubnetGroups,
        Op::DescribeDBEngineVersions,
        Op::GetMetricData,
        Op::DescribeGlobalReplicationGroups,
        Op::CreateGlobalReplicationGroup,
        Op::DeleteGlobalReplicationGroup,
        Op::DisassociateGlobalReplicationGroup,
        Op::FailoverGlobalReplicationGroup,
        Op::DescribeReplicationGroups,
        Op::CreateReplicationGroup,
        Op::ModifyReplicationGroup,
        Op::DeleteReplicationGroup,
        Op::IncreaseReplicaCount,
        Op::DecreaseReplicaCount,
        Op::ListTagsForResource,
        Op::DescribeCacheSubnetGroups,
        Op::DescribeCacheClusters,
        Op::CacheAddTagsToResource,
    ];

    /// The operation AWS calls `name`.
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Op::DescribeGlobalClusters => "DescribeGlobalClusters",
            Op::CreateGlobalCluster => "CreateGlobalCluster",
            Op::ModifyGlobalCluster => "ModifyGlobalCluster",
            Op::DeleteGlobalCluster => "DeleteGlobalCluster",
            Op::RemoveFromGlobalCluster => "RemoveFromGlobalCluster",
            Op::FailoverGlobalCluster => "FailoverGlobalCluster",
            Op::SwitchoverGlobalCluster => "SwitchoverGlobalCluster",
            Op::DescribeDBClusters => "DescribeDBClusters",
            Op::CreateDBCluster => "CreateDBCluster",
            Op::ModifyDBCluster => "ModifyDBCluster",
            Op::DeleteDBCluster => "DeleteDBCluster",
            Op::AddTagsToResource => "AddTagsToResource",
            Op::DescribeDBInstances => "DescribeDBInstances",
            Op::CreateDBInstance => "CreateDBInstance",
            Op::DeleteDBInstance => "DeleteDBInstance",
            Op::ModifyDBInstance => "ModifyDBInstance",
            Op::DescribeDBSubnetGroups => "DescribeDBSubnetGroups",
            Op::DescribeDBEngineVersions => "DescribeDBEngineVersions",
            Op::GetMetricData => "GetMetricData",
            Op::DescribeGlobalReplicationGroups => "DescribeGlobalReplicationGroups",
            Op::CreateGlobalReplicationGroup => "CreateGlobalReplicationGroup",
            Op::DeleteGlobalReplicationGroup => "DeleteGlobalReplicationGroup",
            Op::DisassociateGlobalReplicationGroup => "DisassociateGlobalReplicationGroup",
            Op::FailoverGlobalReplicationGroup => "FailoverGlobalReplicationGroup",
            Op::DescribeReplicationGroups => "DescribeReplicationGroups",
            Op::CreateReplicationGroup => "CreateReplicationGroup",
            Op::ModifyReplicationGroup => "ModifyReplicationGroup",
            Op::DeleteReplicationGroup => "DeleteReplicationGroup",
            Op::IncreaseReplicaCount => "IncreaseReplicaCount",
            Op::DecreaseReplicaCount => "DecreaseReplicaCount",
            Op::ListTagsForResource => "ListTagsForResource",
            Op::DescribeCacheSubnetGroups => "DescribeCacheSubnetGroups",
            Op::DescribeCacheClusters => "DescribeCacheClusters",
            Op::CacheAddTagsToResource => "AddTagsToResource",
        }
    }

    /// The AWS service the operation belongs to, as its endpoint names it.
    pub fn service(self) -> &'static str {
        match self {
            Op::GetMetricData => "monitoring",
            Op::DescribeGlobalReplicationGroups
            | Op::CreateGlobalReplicationGroup
            | Op::DeleteGlobalReplicationGroup
            | Op::DisassociateGlobalReplicationGroup
            | Op::FailoverGlobalReplicationGroup
            | Op::DescribeReplicationGroups
            | Op::CreateReplicationGroup
            | Op::ModifyReplicationGroup
            | Op::DeleteReplicationGroup
            | Op::IncreaseReplicaCount
            | Op::DecreaseReplicaCount
            | Op::ListTagsForResource
            | Op::DescribeCacheSubnetGroups
            | Op::DescribeCacheClusters
            | Op::CacheAddTagsToResource => "elasticache",
            _ => "rds",
        }
    }

    pub fn is_mutating(self) -> bool {
        !matches!(
            self,
            Op::DescribeGlobalClusters
                | Op::DescribeDBClusters
                | Op::DescribeDBInstances
                | Op::DescribeDBSubnetGroups
                | Op::DescribeDBEngineVersions
                | Op::GetMetricData
                | Op::DescribeGlobalReplicationGroups
                | Op::DescribeReplicationGroups
                | Op::ListTagsForResource
                | Op::DescribeCacheSubnetGroups
                | Op::DescribeCacheClusters
        )
    }
}

/// A fault to inject. Counted faults hit the next `calls` calls to the
/// region and then disappear; an outage and a slow operation last until
/// healed or cleared.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Fault {
    /// `Throttling` on the next calls.
    Throttle { region: String, calls: u32 },
    /// HTTP 500 on the next calls.
    ServerError { region: String, calls: u32 },
    /// The next `calls` mutating calls time out *after* AWS carried them
    /// out: the caller cannot tell whether the mutation happened, as with a
    /// real timeout. (Reads are left alone; `ServerError` fails reads.)
    Timeout { region: String, calls: u32 },
    /// The region's endpoints are unreachable: every call fails with
    /// `RegionUnavailable`, and its cluster stops replicating.
    RegionOutage { region: String },
    /// Only the region's AWS APIs are unreachable: every call fails with
    /// `RegionUnavailable`, while its databases and caches keep serving and
    /// replicating (the data plane is up).
    ControlPlaneOutage { region: String },
    /// The region's HTTP health checks fail; everything else works.
    HealthCheckDown { region: String },
    /// The network between two regions is cut: replication from one to the
    /// other stops; everything else works.
    Partition { region: String, peer: String },
    /// Operations of this kind in the region take `extra` longer.
    SlowOperation {
        region: String,
        op: Op,
        extra: Duration,
    },
}

/// The region a fault is injected in.
fn fault_region(fault: &Fault) -> &str {
    match fault {
        Fault::Throttle { region, .. }
        | Fault::ServerError { region, .. }
        | Fault::Timeout { region, .. }
        | Fault::RegionOutage { region }
        | Fault::ControlPlaneOutage { region }
        | Fault::HealthCheckDown { region }
        | Fault::Partition { region, .. }
        | Fault::SlowOperation { region, .. } => region,
    }
}

/// Up to a page of the resources of `region` in `map` (keyed by region
/// and id) whose id comes after `after`, in id order, as `view` shows them.
pub(crate) fn page_of<V, T>(
    map: &BTreeMap<(String, String), V>,
    region: &str,
    after: Option<&str>,
    view: impl Fn(&str) -> Option<T>,
) -> Vec<T> {
    let start = (region.to_string(), after.unwrap_or_default().to_string());
    map.range(start..)
        .take_while(|((r, _), _)| r == region)
        .filter(|((_, id), _)| Some(id.as_str()) != after)
        .take(DESCRIBE_PAGE)
        .filter_map(|((_, id), _)| view(id))
        .collect()
}

/// One call, as the call log keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    pub at: Timestamp,
    pub region: String,
    pub op: Op,
    pub mutating: bool,
    /// `None` on success, else the error's metric label.
    pub error: Option<&'static str>,
}

/// The simulated cloud. Cheap to clone; clones share one world.
#[derive(Clone)]
pub struct SimCloud {
    clock: VirtualClock,
    world: Arc<Mutex<World>>,
    /// Where the world is saved after every change (`--sim-state`).
    state_file: Option<Arc<std::path::Path>>,
    /// Where every call is counted as the AWS adapters count their
    /// requests (`shopfleet_aws_requests_total`), when an operator runs on
    /// this cloud.
    metrics: Arc<std::sync::OnceLock<Arc<crate::telemetry::Metrics>>>,
}

impl std::fmt::Debug for SimCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCloud")
            .field("now", &self.clock.now())
            .finish_non_exhaustive()
    }
}

/// The simulated account every ARN names.
pub const ACCOUNT: &str = "123456789012";

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct World {
    durations: SimDurations,
    faults: Vec<Fault>,
    /// Regions in outage, with the instant the outage began.
    outages: BTreeMap<String, Timestamp>,
    /// The call log is the run's own record, not the world's state.
    #[serde(skip)]
    calls: Vec<CallRecord>,
    /// Calls by operation since the start (or the last clear), whatever
    /// the log keeps.
    #[serde(skip)]
    counts: BTreeMap<&'static str, CallTally>,
    /// How many calls the log keeps, the newest; every call when `None`.
    #[serde(skip)]
    log_limit: Option<usize>,
    /// Bumped by whatever may change what AWS shows (a mutating call, a
    /// completion, a fault), so an observer can tell that nothing changed
    /// without looking at every resource.
    #[serde(skip)]
    changes: u64,
    /// Completions scheduled by long operations, applied when due, in the
    /// order they come due: every call looks for what is due, so finding
    /// it must not cost a scan of everything scheduled. Saved as a list.
    #[serde(with = "pending_list")]
    pending: BTreeMap<(Timestamp, u64), Event>,
    seq: u64,
    aurora: aurora::AuroraWorld,
    elasticache: elasticache::CacheWorld,
    #[serde(default)]
    account: SimAccount,
}

/// The network an account already holds, per region: what a subnet group
/// or security group named in a request must be one of. An account no one
/// declared holds whatever is named (the simulation knows nothing of it);
/// once declared, AWS's refusals apply.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimAccount {
    #[serde(default)]
    pub regions: BTreeMap<String, SimNetwork>,
    #[serde(default)]
    pub declared: bool,
}

/// One region's existing network.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimNetwork {
    /// DB and cache subnet groups (AWS keeps them apart; the simulation
    /// holds one name for both).
    #[serde(default)]
    pub subnet_groups: BTreeSet<String>,
    #[serde(default)]
    pub security_groups: BTreeSet<String>,
}

impl SimAccount {
    pub fn has_subnet_group(&self, region: &str, name: &str) -> bool {
        !self.declared
            || self
                .regions
                .get(region)
                .is_some_and(|n| n.subnet_groups.contains(name))
    }

    /// The first of `ids` the account does not hold in `region`.
    pub fn missing_security_group<'a>(&self, region: &str, ids: &'a [String]) -> Option<&'a str> {
        if !self.declared {
            return None;
        }
        let held = self.regions.get(region);
        ids.iter()
            .find(|id| !held.is_some_and(|n| n.security_groups.contains(id.as_str())))
            .map(String::as_str)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Pending<E> {
    at: Timestamp,
    seq: u64,
    event: E,
}

/// The scheduled completions as the list of [`Pending`] they are saved as.
mod pending_list {
    use std::collections::BTreeMap;

    use k8s_openapi::jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{Event, Pending};

    pub fn serialize<S: Serializer>(
        pending: &BTreeMap<(Timestamp, u64), Event>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            pending
                .iter()
                .map(|(&(at, seq), event)| Pending { at, seq, event }),
        )
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<(Timestamp, u64), Event>, D::Error> {
        Ok(Vec::<Pending<Event>>::deserialize(deserializer)?
            .into_iter()
            .map(|p| ((p.at, p.seq), p.event))
            .collect())
    }
}

/// A completion scheduled by a long operation of either service.
#[derive(serde::Serialize, serde::Deserialize)]
enum Event {
    Aurora(aurora::Event),
    Cache(elasticache::Event),
}

impl From<aurora::Event> for Event {
    fn from(event: aurora::Event) -> Self {
        Event::Aurora(event)
    }
}

impl From<elasticache::Event> for Event {
    fn from(event: elasticache::Event) -> Self {
        Event::Cache(event)
    }
}

impl SimCloud {
    pub fn new(clock: VirtualClock) -> Self {
        Self::with_durations(clock, SimDurations::default())
    }

    /// Counts every call from now on in `metrics`, by service, operation,
    /// region and outcome, as the AWS adapters count their requests.
    pub fn count_calls_in(&self, metrics: Arc<crate::telemetry::Metrics>) {
        let _ = self.metrics.set(metrics);
    }

    pub fn with_durations(clock: VirtualClock, durations: SimDurations) -> Self {
        Self {
            clock,
            world: Arc::new(Mutex::new(World {
                durations,
                faults: Vec::new(),
                outages: BTreeMap::new(),
                calls: Vec::new(),
                counts: BTreeMap::new(),
                log_limit: None,
                changes: 0,
                pending: BTreeMap::new(),
                seq: 0,
                aurora: aurora::AuroraWorld::default(),
                elasticache: elasticache::CacheWorld::default(),
                account: SimAccount::default(),
            })),
            state_file: None,
            metrics: Arc::default(),
        }
    }

    /// A simulated cloud kept in `path`: the world saved there by an
    /// earlier run (its virtual time moved on by the wall-clock time since,
    /// at `speed`), or a new one starting at `wall_now`. Every change is
    /// saved back.
    pub fn persistent(
        path: &std::path::Path,
        wall_now: Timestamp,
        speed: u32,
    ) -> std::io::Result<Self> {
        let mut cloud = match persist::load(path)? {
            Some(mut snapshot) => {
                snapshot.world.aurora.reindex();
                snapshot.world.elasticache.reindex();
                let down = wall_now
                    .duration_since(snapshot.wall_at)
                    .unsigned_abs()
                    .checked_mul(speed)
                    .unwrap_or_default();
                let resumed = snapshot
                    .virtual_at
                    .checked_add(down)
                    .unwrap_or(snapshot.virtual_at);
                Self {
                    clock: VirtualClock::at(resumed),
                    world: Arc::new(Mutex::new(snapshot.world)),
                    state_file: None,
                    metrics: Arc::default(),
                }
            }
            None => Self::new(VirtualClock::at(wall_now)),
        };
        cloud.state_file = Some(Arc::from(path));
        cloud.save(&cloud.lock(), cloud.clock.now());
        Ok(cloud)
    }

    /// Saves the world when it is kept on disk. A failed save is logged,
    /// not fatal: the simulation goes on in memory.
    fn save(&self, world: &World, now: Timestamp) {
        let Some(path) = &self.state_file else {
            return;
        };
        let snapshot = persist::SnapshotRef {
            virtual_at: now,
            wall_at: Timestamp::now(),
            world,
        };
        if let Err(error) = persist::save(path, &snapshot) {
            tracing::warn!(%error, path = %path.display(), "could not save the simulated cloud");
        }
    }

    pub fn clock(&self) -> &VirtualClock {
        &self.clock
    }

    /// Declares the network the account holds; from now on a subnet group
    /// or security group outside it is refused as AWS refuses it.
    pub fn declare_account(&self, regions: BTreeMap<String, SimNetwork>) {
        let mut world = self.lock_to_change();
        world.account = SimAccount {
            regions,
            declared: true,
        };
        self.save(&world, self.clock.now());
    }

    /// The Aurora API of one region.
    pub fn aurora(&self, region: &str) -> Arc<dyn AuroraPort> {
        Arc::new(aurora::SimAuroraPort::new(self.clone(), region))
    }

    /// The ElastiCache API of one region.
    pub fn elasticache(&self, region: &str) -> Arc<dyn ElastiCachePort> {
        Arc::new(elasticache::SimElastiCachePort::new(self.clone(), region))
    }

    pub fn inject(&self, fault: Fault) {
        let now = self.clock.now();
        let mut world = self.lock_to_change();
        if let Fault::RegionOutage { region } = &fault {
            world.outages.entry(region.clone()).or_insert(now);
        }
        world.faults.push(fault);
        self.save(&world, now);
    }

    /// Ends a region's outage; its clusters resume replicating (a former
    /// writer that was failed over comes back as a secondary).
    pub fn heal_region(&self, region: &str) {
        let mut world = self.lock_to_change();
        world.outages.remove(region);
        world
            .faults
            .retain(|f| !matches!(f, Fault::RegionOutage { region: r } if r == region));
    }

    /// Removes every fault, outages included.
    pub fn clear_faults(&self) {
        let mut world = self.lock_to_change();
        world.faults.clear();
        world.outages.clear();
    }

    /// Removes every fault that names `region` (its outage and its
    /// partitions included) and its replication-lag override: the region is
    /// back to normal.
    pub fn recover_region(&self, region: &str) {
        let mut world = self.lock_to_change();
        world.outages.remove(region);
        world.faults.retain(|f| {
            fault_region(f) != region
                && !matches!(f, Fault::Partition { peer, .. } if peer == region)
        });
        world.aurora.lag.remove(region);
        self.save(&world, self.clock.now());
    }

    pub fn is_region_out(&self, region: &str) -> bool {
        self.lock().outages.contains_key(region)
    }

    /// The region's health checks pass again.
    pub fn heal_health_check(&self, region: &str) {
        self.lock_to_change()
            .faults
            .retain(|f| !matches!(f, Fault::HealthCheckDown { region: r } if r == region));
    }

    /// Whether the region's HTTP health checks fail (its outage, or a fault
    /// of the checks alone).
    pub fn is_health_check_down(&self, region: &str) -> bool {
        let world = self.lock();
        world.outages.contains_key(region)
            || world
                .faults
                .iter()
                .any(|f| matches!(f, Fault::HealthCheckDown { region: r } if r == region))
    }

    /// Sets the replication lag a secondary Aurora cluster in `region` reports.
    pub fn set_replication_lag(&self, region: &str, lag: Duration) {
        self.lock_to_change()
            .aurora
            .lag
            .insert(region.to_string(), lag);
    }

    /// Sets the replication lag a secondary replication group in `region`
    /// reports.
    pub fn set_cache_replication_lag(&self, region: &str, lag: Duration) {
        self.lock_to_change()
            .elasticache
            .lag
            .insert(region.to_string(), lag);
    }

    /// Drops the lag override of `region`: it lags as usual again.
    pub fn clear_replication_lag(&self, region: &str) {
        let mut world = self.lock_to_change();
        world.aurora.lag.remove(region);
        world.elasticache.lag.remove(region);
    }

    /// When the next long operation completes, if one is under way: the
    /// next instant the world changes without anyone calling AWS.
    pub fn next_completion(&self) -> Option<Timestamp> {
        self.lock().pending.keys().next().map(|(at, _)| *at)
    }

    /// The calls the log keeps (every call unless [`Self::keep_calls`]
    /// limited it).
    pub fn calls(&self) -> Vec<CallRecord> {
        self.lock().calls.clone()
    }

    /// Keeps only the newest `limit` calls in the log; the counts go on.
    /// A long-running operator (`run --cloud simulated`) would otherwise
    /// hold every call it ever made: its memory would grow with its age.
    pub fn keep_calls(&self, limit: usize) {
        let mut world = self.lock();
        world.log_limit = Some(limit);
        world.trim_log();
    }

    /// Calls by operation name since the start (or the last clear),
    /// whatever the log keeps.
    pub fn call_tally(&self) -> BTreeMap<&'static str, CallTally> {
        self.lock().counts.clone()
    }

    pub fn call_count(&self, op: Op) -> usize {
        self.lock().counts.get(op.name()).map_or(0, |c| c.calls)
    }

    pub fn mutating_calls(&self) -> usize {
        self.lock()
            .counts
            .values()
            .filter(|c| c.mutating)
            .map(|c| c.calls)
            .sum()
    }

    pub fn read_calls(&self) -> usize {
        self.lock()
            .counts
            .values()
            .filter(|c| !c.mutating)
            .map(|c| c.calls)
            .sum()
    }

    /// Calls by operation name, for reports.
    pub fn calls_by_op(&self) -> BTreeMap<&'static str, usize> {
        self.lock()
            .counts
            .iter()
            .map(|(name, c)| (*name, c.calls))
            .collect()
    }

    pub fn clear_calls(&self) {
        let mut world = self.lock();
        world.calls.clear();
        world.counts.clear();
    }

    /// The global cluster as an observer with perfect sight sees it: no
    /// call is logged and no fault applies.
    pub fn global_cluster(&self, id: &str) -> Option<GlobalCluster> {
        let now = self.clock.now();
        let mut world = self.lock();
        world.settle(now);
        world.aurora.global_view(id)
    }

    /// A cluster, seen as [`SimCloud::global_cluster`] sees things.
    pub fn cluster(&self, region: &str, id: &str) -> Option<Cluster> {
        let now = self.clock.now();
        let mut world = self.lock();
        world.settle(now);
        world.aurora.cluster_view(region, id)
    }

    /// A cluster's instances, seen as [`SimCloud::global_cluster`] sees things.
    pub fn instances(&self, region: &str, cluster_id: &str) -> Vec<Instance> {
        let now = self.clock.now();
        let mut world = self.lock();
        world.settle(now);
        world.aurora.instances_view(region, cluster_id)
    }

    /// Whether `host` is the writer or reader endpoint of an Aurora cluster
    /// in `region`, as [`SimCloud::global_cluster`] sees things.
    pub fn serves_endpoint(&self, region: &str, host: &str) -> bool {
        let now = self.clock.now();
        let mut world = self.lock();
        world.settle(now);
        world.aurora.serves(region, host)
    }

    /// Every Aurora cluster that accepts writes now, as `(region, id)`: the
    /// writer of its global cluster (or a standalone cluster), reachable,
    /// with an available writer instance. Two at once is split brain.
    pub fn writers(&self) -> Vec<(String, String)> {
        let now = self.clock.now();
        let mut world = self.lock();
        world.settle(now);
        world.aurora.writers(&world.outages)
    }

    /// Every global cluster's identifier.
    pub fn all_global_clusters(&self) -> BTreeSet<String> {
        self.lock().aurora.globals.keys().cloned().collect()
    }

    /// Every cluster in every region, as `(region, id)`.
    pub fn all_clusters(&self) -> BTreeSet<(String, String)> {
        self.lock().aurora.clusters.keys().cloned().collect()
    }

    /// Every instance in every region, as `(region, id)`.
    pub fn all_instances(&self) -> BTreeSet<(String, String)> {
        self.lock().aurora.instances.keys().cloned().collect()
    }

    /// Final snapshots taken, as `(region, id)`.
    pub fn snapshots(&self) -> BTreeSet<(String, String)> {
        self.lock().aurora.snapshots.clone()
    }

    /// Failovers and switchovers carried out, oldest first.
    pub fn failovers(&self) -> Vec<FailoverRecord> {
        self.lock().aurora.failovers.clone()
    }

    /// Every Global Datastore, as [`SimCloud::global_cluster`] sees things.
    pub fn global_replication_groups(&self) -> Vec<GlobalReplicationGroup> {
        let now = self.clock.now();
        let mut world = self.lock();
        world.settle(now);
        world.elasticache.global_views()
    }

    /// A replication group, as [`SimCloud::global_cluster`] sees things.
    pub fn replication_group(&self, region: &str, id: &str) -> Option<ReplicationGroup> {
        let now = self.clock.now();
        let mut world = self.lock();
        world.settle(now);
        world.elasticache.group_view(region, id)
    }

    /// Every replication group in every region, as `(region, id)`.
    pub fn all_replication_groups(&self) -> BTreeSet<(String, String)> {
        self.lock().elasticache.groups.keys().cloned().collect()
    }

    /// Final snapshots of replication groups, as `(region, id)`.
    pub fn cache_snapshots(&self) -> BTreeSet<(String, String)> {
        self.lock().elasticache.snapshots.clone()
    }

    /// Global Datastore failovers carried out, oldest first.
    pub fn cache_failovers(&self) -> Vec<CacheFailoverRecord> {
        self.lock().elasticache.failovers.clone()
    }

    /// A count that moves whenever what AWS shows may have changed
    /// (completions due by now included): equal counts, equal world.
    pub fn changes(&self) -> u64 {
        let now = self.clock.now();
        let mut world = self.lock();
        world.settle(now);
        world.changes
    }

    /// The world, to change it outside an API call.
    fn lock_to_change(&self) -> MutexGuard<'_, World> {
        let mut world = self.lock();
        world.changes += 1;
        world
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        // Every mutation leaves the world consistent before it can panic,
        // so a poisoned lock still guards valid state.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one API call: applies due completions, logs the call, applies
    /// faults, then the operation.
    /// Every item of a region's listing, one call of `op` per page of
    /// [`DESCRIBE_PAGE`], as AWS answers a paginated describe: the call log
    /// and the faults count pages. `page` lists up to a page after an id.
    pub(crate) fn call_pages<T>(
        &self,
        region: &str,
        op: Op,
        id_of: fn(&T) -> &str,
        page: impl Fn(&World, Option<&str>) -> Vec<T>,
    ) -> Result<Vec<T>, CloudError> {
        let mut items: Vec<T> = Vec::new();
        loop {
            let after = items.last().map(|item| id_of(item).to_string());
            let next = self.call(region, op, |w, _| Ok(page(w, after.as_deref())))?;
            let full = next.len() == DESCRIBE_PAGE;
            items.extend(next);
            if !full {
                return Ok(items);
            }
        }
    }

    pub(crate) fn call<T>(
        &self,
        region: &str,
        op: Op,
        operation: impl FnOnce(&mut World, Timestamp) -> Result<T, CloudError>,
    ) -> Result<T, CloudError> {
        let now = self.clock.now();
        let mut world = self.lock();
        world.settle(now);
        let (before, lose_answer) = world.take_fault(region, op);
        let result = match before {
            Some(error) => Err(error),
            None => {
                let result = operation(&mut world, now);
                if lose_answer {
                    Err(CloudError::transient(
                        TransientKind::Timeout,
                        "RequestTimeout",
                        format!("{} in {region} timed out", op.name()),
                    ))
                } else {
                    result
                }
            }
        };
        let error = result.as_ref().err().map(CloudError::metric_label);
        if let Some(metrics) = self.metrics.get() {
            let outcome = match error {
                None => "ok",
                Some("throttled") => "throttled",
                Some(_) => "error",
            };
            // Labelled as the SDK names the services (its `sdkId`), as the
            // AWS adapters' requests are.
            let service = match op.service() {
                "monitoring" => "cloudwatch",
                other => other,
            };
            metrics.record_aws_request(service, op.name(), region, outcome);
        }
        if world.log_limit != Some(0) {
            world.calls.push(CallRecord {
                at: now,
                region: region.to_string(),
                op,
                mutating: op.is_mutating(),
                error,
            });
        }
        let count = world.counts.entry(op.name()).or_insert(CallTally {
            calls: 0,
            failed: 0,
            mutating: op.is_mutating(),
        });
        count.calls += 1;
        if result.is_err() {
            count.failed += 1;
        }
        if op.is_mutating() {
            world.changes += 1;
        }
        world.trim_log();
        if op.is_mutating() {
            self.save(&world, now);
        }
        result
    }
}

/// How many calls of one operation were made, and how many failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallTally {
    pub calls: usize,
    /// Failed by a fault, or refused.
    pub failed: usize,
    pub mutating: bool,
}

impl World {
    /// Drops the oldest calls beyond the log's limit, half the limit at a
    /// time so that trimming costs little per call.
    fn trim_log(&mut self) {
        if let Some(limit) = self.log_limit
            && self.calls.len() > limit
        {
            let keep = limit / 2;
            let drop = self.calls.len() - keep;
            self.calls.drain(..drop);
        }
    }

    /// Whether the network between `a` and `b` is cut.
    fn partitioned(&self, a: &str, b: &str) -> bool {
        self.faults.iter().any(|f| {
            matches!(f, Fault::Partition { region, peer }
                if (region == a && peer == b) || (region == b && peer == a))
        })
    }

    /// The fault that hits this call: an error to return instead of
    /// running it, and whether to lose the answer after running it.
    fn take_fault(&mut self, region: &str, op: Op) -> (Option<CloudError>, bool) {
        let api_out = self
            .faults
            .iter()
            .any(|f| matches!(f, Fault::ControlPlaneOutage { region: r } if r == region));
        if self.outages.contains_key(region) || api_out {
            return (
                Some(CloudError::region_unavailable(
                    region,
                    format!(
                        "could not connect to the {} endpoint in {region}",
                        op.service()
                    ),
                )),
                false,
            );
        }
        let position = self.faults.iter().position(|f| match f {
            Fault::Throttle { region: r, calls } | Fault::ServerError { region: r, calls } => {
                r == region && *calls > 0
            }
            Fault::Timeout { region: r, calls } => r == region && *calls > 0 && op.is_mutating(),
            Fault::RegionOutage { .. }
            | Fault::ControlPlaneOutage { .. }
            | Fault::HealthCheckDown { .. }
            | Fault::Partition { .. }
            | Fault::SlowOperation { .. } => false,
        });
        let Some(position) = position else {
            return (None, false);
        };
        let outcome = match &mut self.faults[position] {
            Fault::Throttle { calls, .. } => {
                *calls -= 1;
                (Some(CloudError::throttled("Rate exceeded")), false)
            }
            Fault::ServerError { calls, .. } => {
                *calls -= 1;
                (
                    Some(CloudError::transient(
                        TransientKind::ServerError,
                        "InternalFailure",
                        format!("{} failed with an internal error", op.name()),
                    )),
                    false,
                )
            }
            Fault::Timeout { calls, .. } => {
                *calls -= 1;
                (None, true)
            }
            Fault::RegionOutage { .. }
            | Fault::ControlPlaneOutage { .. }
            | Fault::HealthCheckDown { .. }
            | Fault::Partition { .. }
            | Fault::SlowOperation { .. } => (None, false),
        };
        self.faults.retain(|f| match f {
            Fault::Throttle { calls, .. }
            | Fault::ServerError { calls, .. }
            | Fault::Timeout { calls, .. } => *calls > 0,
            _ => true,
        });
        outcome
    }

    /// The duration of `op` in `region`, stretched by any slow-operation fault.
    fn duration(&self, region: &str, op: Op, base: Duration) -> Duration {
        let extra: Duration = self
            .faults
            .iter()
            .filter_map(|f| match f {
                Fault::SlowOperation {
                    region: r,
                    op: o,
                    extra,
                } if r == region && *o == op => Some(*extra),
                _ => None,
            })
            .sum();
        base + extra
    }

    fn schedule(&mut self, now: Timestamp, after: Duration, event: impl Into<Event>) {
        self.seq += 1;
        let after =
            SignedDuration::try_from(after).expect("simulated durations fit a SignedDuration");
        let at = now
            .checked_add(after)
            .expect("simulated time stays in range");
        self.pending.insert((at, self.seq), event.into());
    }

    /// Applies every completion due by `now`, oldest first.
    fn settle(&mut self, now: Timestamp) {
        while let Some(entry) = self.pending.first_entry()
            && entry.key().0 <= now
        {
            let ((at, _), event) = entry.remove_entry();
            self.changes += 1;
            match event {
                Event::Aurora(event) => self.apply(at, event),
                Event::Cache(event) => self.apply_cache(at, event),
            }
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod elasticache_tests;

#[cfg(test)]
mod aurora_concern_tests;

#[cfg(test)]
mod elasticache_concern_tests;
