//! Simulated Aurora: clusters, instances and global clusters with the
//! rules AWS documents for them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::jiff::Timestamp;

use crate::cloud::aurora::port::{
    AuroraPort, Cluster, ClusterStatus, CreateClusterRequest, CreateGlobalClusterRequest,
    CreateInstanceRequest, DeleteClusterRequest, GlobalCluster, GlobalClusterStatus,
    GlobalFailoverState, GlobalFailoverStatus, GlobalMember, Instance, InstanceStatus,
    METRIC_QUERIES_PER_CALL, ModifyClusterRequest, ModifyGlobalClusterRequest,
    ModifyInstanceRequest, RegionInstance, SubnetGroup, Tags,
};
use crate::cloud::{CloudError, arn_region};

use super::{ACCOUNT, DESCRIBE_PAGE, Op, SimCloud, World, page_of};

/// A failover or switchover the simulated AWS carried out.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FailoverRecord {
    pub global_cluster_id: String,
    pub from_region: String,
    pub to_region: String,
    pub allow_data_loss: bool,
    pub requested_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    /// Writes younger than this on the old writer were not replicated and
    /// are lost (zero for a switchover, which waits for the target to sync).
    pub data_loss_window: Duration,
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct AuroraWorld {
    // The maps' values are boxed: a B-tree node has room for eleven
    // whatever it holds, and a map filled in key order keeps its nodes
    // about half full, so inline values of a few hundred bytes were mostly
    // empty slots (in the operator's memory with `--cloud simulated`).
    pub(crate) globals: BTreeMap<String, Box<SimGlobal>>,
    /// Keyed by (region, identifier): identifiers are unique per region.
    #[serde(with = "super::persist::entries")]
    pub(crate) clusters: BTreeMap<(String, String), Box<SimCluster>>,
    #[serde(with = "super::persist::entries")]
    pub(crate) instances: BTreeMap<(String, String), Box<SimInstance>>,
    /// Each cluster's instances as `(seq, id)`, keyed by (region, cluster
    /// identifier): describing a cluster must not scan every instance of
    /// every shop. Derived from `instances`, so not saved; see
    /// [`AuroraWorld::reindex`].
    #[serde(skip)]
    members_of: BTreeMap<(String, String), BTreeSet<(u64, String)>>,
    pub(crate) snapshots: BTreeSet<(String, String)>,
    pub(crate) lag: BTreeMap<String, Duration>,
    pub(crate) failovers: Vec<FailoverRecord>,
    instance_seq: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct SimGlobal {
    id: String,
    status: GlobalClusterStatus,
    engine: String,
    engine_version: String,
    members: Vec<GlobalMember>,
    deletion_protection: bool,
    failover: Option<GlobalFailoverState>,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct SimCluster {
    id: String,
    region: String,
    status: ClusterStatus,
    engine: String,
    engine_version: String,
    kms_key_id: Option<String>,
    storage_encrypted: bool,
    deletion_protection: bool,
    tags: Tags,
    global_cluster_id: Option<String>,
    created_at: Timestamp,
    /// The instance that holds the writer role when the cluster writes.
    writer_instance: Option<String>,
    #[serde(default)]
    subnet_group: Option<String>,
    #[serde(default)]
    security_group_ids: Vec<String>,
    #[serde(default)]
    parameter_group: Option<String>,
    #[serde(default)]
    port: Option<i32>,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct SimInstance {
    id: String,
    region: String,
    cluster_id: String,
    status: InstanceStatus,
    class: String,
    tags: Tags,
    seq: u64,
    #[serde(default)]
    parameter_group: Option<String>,
}

/// A completion scheduled by a long operation.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) enum Event {
    ClusterAvailable {
        region: String,
        id: String,
    },
    ClusterUpgraded {
        region: String,
        id: String,
        version: String,
    },
    ClusterDeleted {
        region: String,
        id: String,
    },
    ClusterDetached {
        region: String,
        id: String,
    },
    InstanceAvailable {
        region: String,
        id: String,
    },
    InstanceDeleted {
        region: String,
        id: String,
    },
    GlobalAvailable {
        id: String,
    },
    /// Every member of the global cluster runs `version`.
    GlobalUpgraded {
        id: String,
        version: String,
    },
    GlobalDeleted {
        id: String,
    },
    WriterMoved {
        global: String,
        to_arn: String,
        record: usize,
    },
}

fn cluster_arn(region: &str, id: &str) -> String {
    format!("arn:aws:rds:{region}:{ACCOUNT}:cluster:{id}")
}

fn instance_arn(region: &str, id: &str) -> String {
    format!("arn:aws:rds:{region}:{ACCOUNT}:db:{id}")
}

const WRITER_ENDPOINT: &str = "cluster-sim";
const READER_ENDPOINT: &str = "cluster-ro-sim";

/// What follows the cluster identifier in its endpoints of this kind.
fn endpoint_suffix(kind: &str, region: &str) -> String {
    format!(".{kind}.{region}.rds.amazonaws.com")
}

fn global_arn(id: &str) -> String {
    format!("arn:aws:rds::{ACCOUNT}:global-cluster:{id}")
}

/// `…:cluster:<id>` → (region, id).
fn parse_cluster_arn(arn: &str) -> Option<(String, String)> {
    let region = arn_region(arn)?;
    let id = arn.rsplit_once(":cluster:")?.1;
    Some((region.to_string(), id.to_string()))
}

/// `DescribeDBEngineVersions --default-only` for a major version.
fn default_version(engine: &str, major: &str) -> Option<String> {
    default_versions(engine)?
        .iter()
        .find(|(m, _)| *m == major)
        .map(|(_, full)| (*full).to_string())
}

fn default_versions(engine: &str) -> Option<&'static [(&'static str, &'static str)]> {
    Some(match engine {
        "aurora-postgresql" => &[
            ("17", "17.4"),
            ("16", "16.6"),
            ("15", "15.10"),
            ("14", "14.15"),
            ("13", "13.18"),
        ],
        "aurora-mysql" => &[
            ("8.0", "8.0.mysql_aurora.3.08.0"),
            ("5.7", "5.7.mysql_aurora.2.12.4"),
        ],
        _ => return None,
    })
}

/// The version a create or modify runs. AWS documents a major-only
/// `EngineVersion` for Aurora MySQL only (`5.7`, `8.0`: its default
/// minor); Aurora PostgreSQL needs a full version, so `16` is refused as
/// an unknown version.
fn resolve_version(engine: &str, requested: &str) -> Result<String, CloudError> {
    let defaults = default_versions(engine).ok_or_else(|| {
        CloudError::refused(
            "InvalidParameterValue",
            format!("Invalid DB engine: {engine}"),
        )
    })?;
    if let Some((_, full)) = defaults.iter().find(|(major, _)| *major == requested)
        && engine == "aurora-mysql"
    {
        return Ok((*full).to_string());
    }
    let known_major = defaults.iter().any(|(major, _)| {
        requested
            .strip_prefix(major)
            .is_some_and(|rest| rest.starts_with('.'))
    });
    if known_major {
        Ok(requested.to_string())
    } else {
        Err(CloudError::refused(
            "InvalidParameterCombination",
            format!("Cannot find version {requested} for {engine}"),
        ))
    }
}

fn major_of(version: &str) -> &str {
    if version.contains("mysql_aurora") {
        version.get(..3).unwrap_or(version)
    } else {
        version.split('.').next().unwrap_or(version)
    }
}

/// Numeric components, for ordering versions of one major.
fn version_key(version: &str) -> Vec<u64> {
    version
        .split(['.', '-', '_'])
        .filter_map(|c| c.parse().ok())
        .collect()
}

/// AWS reports a key ARN whatever form the request named.
fn resolve_kms_key(region: &str, key: &str) -> Result<String, CloudError> {
    if let Some(key_region) = arn_region(key) {
        if key_region != region {
            return Err(CloudError::refused(
                "KMSKeyNotAccessibleFault",
                format!("KMS key {key} is not accessible from {region}"),
            ));
        }
        return Ok(key.to_string());
    }
    let name = key.trim_start_matches("alias/").replace('/', "-");
    Ok(format!("arn:aws:kms:{region}:{ACCOUNT}:key/sim-{name}"))
}

fn busy_cluster(id: &str, status: &ClusterStatus) -> CloudError {
    CloudError::busy(
        "InvalidDBClusterStateFault",
        format!("DB cluster {id} is not currently in the available state (it is {status})"),
    )
}

fn cluster_not_found(id: &str) -> CloudError {
    CloudError::not_found(
        "DBClusterNotFoundFault",
        format!("DBCluster {id} not found"),
    )
}

fn global_not_found(id: &str) -> CloudError {
    CloudError::not_found(
        "GlobalClusterNotFoundFault",
        format!("Global cluster {id} not found"),
    )
}

impl AuroraWorld {
    fn key(region: &str, id: &str) -> (String, String) {
        (region.to_string(), id.to_string())
    }

    fn cluster_writes(&self, cluster: &SimCluster) -> bool {
        match &cluster.global_cluster_id {
            None => true,
            Some(g) => self.globals.get(g).is_some_and(|g| {
                g.members.iter().any(|m| {
                    m.is_writer && m.cluster_arn == cluster_arn(&cluster.region, &cluster.id)
                })
            }),
        }
    }

    /// Clusters that accept writes now: each is its global cluster's writer
    /// (or standalone), reachable, and has an available writer instance.
    pub(crate) fn writers(&self, outages: &BTreeMap<String, Timestamp>) -> Vec<(String, String)> {
        self.clusters
            .values()
            .filter(|c| !outages.contains_key(&c.region))
            .filter(|c| !matches!(c.status, ClusterStatus::Creating | ClusterStatus::Deleting))
            .filter(|c| self.cluster_writes(c))
            .filter(|c| {
                c.writer_instance.as_ref().is_some_and(|w| {
                    self.instances
                        .get(&Self::key(&c.region, w))
                        .is_some_and(|i| i.status == InstanceStatus::Available)
                })
            })
            .map(|c| (c.region.clone(), c.id.clone()))
            .collect()
    }

    /// The cluster's instances, oldest first.
    fn cluster_instances(&self, region: &str, cluster_id: &str) -> Vec<&SimInstance> {
        self.members_of
            .get(&Self::key(region, cluster_id))
            .into_iter()
            .flatten()
            .filter_map(|(_, id)| self.instances.get(&Self::key(region, id)).map(|i| &**i))
            .collect()
    }

    fn add_instance(&mut self, instance: SimInstance) {
        self.members_of
            .entry(Self::key(&instance.region, &instance.cluster_id))
            .or_default()
            .insert((instance.seq, instance.id.clone()));
        self.instances.insert(
            Self::key(&instance.region, &instance.id),
            Box::new(instance),
        );
    }

    fn remove_instance(&mut self, region: &str, id: &str) -> Option<SimInstance> {
        let gone = self.instances.remove(&Self::key(region, id))?;
        let cluster = Self::key(region, &gone.cluster_id);
        if let Some(members) = self.members_of.get_mut(&cluster) {
            members.remove(&(gone.seq, gone.id.clone()));
            if members.is_empty() {
                self.members_of.remove(&cluster);
            }
        }
        Some(*gone)
    }

    /// Rebuilds what is derived from the saved state (after loading it).
    pub(crate) fn reindex(&mut self) {
        self.members_of.clear();
        for i in self.instances.values() {
            self.members_of
                .entry(Self::key(&i.region, &i.cluster_id))
                .or_default()
                .insert((i.seq, i.id.clone()));
        }
    }

    /// Whether `host` is the writer or reader endpoint of a cluster in
    /// `region`: the endpoints name the cluster, so no cluster is scanned.
    pub(crate) fn serves(&self, region: &str, host: &str) -> bool {
        [WRITER_ENDPOINT, READER_ENDPOINT].into_iter().any(|kind| {
            host.strip_suffix(&endpoint_suffix(kind, region))
                .is_some_and(|id| self.clusters.contains_key(&Self::key(region, id)))
        })
    }

    pub(crate) fn global_view(&self, id: &str) -> Option<GlobalCluster> {
        let g = self.globals.get(id)?;
        Some(GlobalCluster {
            id: g.id.clone(),
            arn: global_arn(&g.id),
            status: g.status.clone(),
            engine: g.engine.clone(),
            engine_version: g.engine_version.clone(),
            members: g.members.clone(),
            deletion_protection: g.deletion_protection,
            endpoint: Some(format!("{}.global-sim.global.rds.amazonaws.com", g.id)),
            failover: g.failover.clone(),
        })
    }

    pub(crate) fn cluster_view(&self, region: &str, id: &str) -> Option<Cluster> {
        let c = self.clusters.get(&Self::key(region, id))?;
        Some(Cluster {
            id: c.id.clone(),
            arn: cluster_arn(region, id),
            status: c.status.clone(),
            engine: c.engine.clone(),
            engine_version: c.engine_version.clone(),
            writer_endpoint: Some(format!("{id}{}", endpoint_suffix(WRITER_ENDPOINT, region))),
            reader_endpoint: Some(format!("{id}{}", endpoint_suffix(READER_ENDPOINT, region))),
            kms_key_id: c.kms_key_id.clone(),
            storage_encrypted: c.storage_encrypted,
            deletion_protection: c.deletion_protection,
            tags: c.tags.clone(),
            global_cluster_id: c.global_cluster_id.clone(),
            members: self
                .cluster_instances(region, id)
                .iter()
                .map(|i| i.id.clone())
                .collect(),
            writer: c.writer_instance.clone().filter(|_| self.cluster_writes(c)),
            created_at: Some(c.created_at),
            // AWS reports the default group of an account's default VPC.
            subnet_group: Some(c.subnet_group.clone().unwrap_or_else(|| "default".into())),
            security_group_ids: c.security_group_ids.clone(),
            parameter_group: Some(
                c.parameter_group.clone().unwrap_or_else(|| {
                    format!("default.{}{}", c.engine, major_of(&c.engine_version))
                }),
            ),
            port: Some(c.port.unwrap_or(if c.engine == "aurora-mysql" {
                3306
            } else {
                5432
            })),
        })
    }

    /// A page of a region-wide `DescribeDBInstances`, by identifier after
    /// `after`, each with its creation order; no writer flag (AWS keeps it
    /// on the cluster).
    fn instances_page(&self, region: &str, after: Option<&str>) -> Vec<(u64, RegionInstance)> {
        page_of(&self.instances, region, after, |id| {
            let i = self.instances.get(&Self::key(region, id))?;
            let cluster = self.clusters.get(&Self::key(region, &i.cluster_id))?;
            Some((
                i.seq,
                RegionInstance {
                    cluster_id: i.cluster_id.clone(),
                    instance: self.instance_view(region, cluster, i, false),
                },
            ))
        })
    }

    fn instance_view(
        &self,
        region: &str,
        cluster: &SimCluster,
        i: &SimInstance,
        is_writer: bool,
    ) -> Instance {
        Instance {
            id: i.id.clone(),
            arn: instance_arn(region, &i.id),
            status: i.status.clone(),
            class: i.class.clone(),
            is_writer,
            tags: i.tags.clone(),
            parameter_group: Some(i.parameter_group.clone().unwrap_or_else(|| {
                format!(
                    "default.{}{}",
                    cluster.engine,
                    major_of(&cluster.engine_version)
                )
            })),
        }
    }

    pub(crate) fn instances_view(&self, region: &str, cluster_id: &str) -> Vec<Instance> {
        let Some(cluster) = self.clusters.get(&Self::key(region, cluster_id)) else {
            return Vec::new();
        };
        let writes = self.cluster_writes(cluster);
        self.cluster_instances(region, cluster_id)
            .into_iter()
            .map(|i| {
                let is_writer = writes && cluster.writer_instance.as_deref() == Some(i.id.as_str());
                self.instance_view(region, cluster, i, is_writer)
            })
            .collect()
    }
}

impl World {
    pub(super) fn apply(&mut self, at: Timestamp, event: Event) {
        let a = &mut self.aurora;
        match event {
            Event::ClusterAvailable { region, id } => {
                if let Some(c) = a.clusters.get_mut(&AuroraWorld::key(&region, &id)) {
                    c.status = ClusterStatus::Available;
                }
            }
            Event::ClusterUpgraded {
                region,
                id,
                version,
            } => {
                let Some(c) = a.clusters.get_mut(&AuroraWorld::key(&region, &id)) else {
                    return;
                };
                c.status = ClusterStatus::Available;
                c.engine_version = version.clone();
                let global = c.global_cluster_id.clone();
                // The global cluster reports the new version once every
                // member runs it (members are upgraded one by one).
                if let Some(g) = global.and_then(|g| a.globals.get(&g)) {
                    let all_upgraded = g.members.iter().all(|m| {
                        parse_cluster_arn(&m.cluster_arn)
                            .and_then(|(r, i)| a.clusters.get(&AuroraWorld::key(&r, &i)))
                            .is_some_and(|c| c.engine_version == version)
                    });
                    let gid = g.id.clone();
                    if all_upgraded && let Some(g) = a.globals.get_mut(&gid) {
                        g.engine_version = version;
                    }
                }
            }
            Event::ClusterDeleted { region, id } => {
                a.clusters.remove(&AuroraWorld::key(&region, &id));
            }
            Event::ClusterDetached { region, id } => {
                if let Some(c) = a.clusters.get_mut(&AuroraWorld::key(&region, &id)) {
                    c.status = ClusterStatus::Available;
                    c.global_cluster_id = None;
                }
            }
            Event::InstanceAvailable { region, id } => {
                if let Some(i) = a.instances.get_mut(&AuroraWorld::key(&region, &id)) {
                    i.status = InstanceStatus::Available;
                }
            }
            Event::InstanceDeleted { region, id } => {
                let Some(gone) = a.remove_instance(&region, &id) else {
                    return;
                };
                // Aurora moves the writer role to another instance when the
                // writer goes away.
                let next = a
                    .cluster_instances(&region, &gone.cluster_id)
                    .iter()
                    .find(|i| i.status != InstanceStatus::Deleting)
                    .map(|i| i.id.clone());
                if let Some(c) = a
                    .clusters
                    .get_mut(&AuroraWorld::key(&region, &gone.cluster_id))
                    && c.writer_instance.as_deref() == Some(id.as_str())
                {
                    c.writer_instance = next;
                }
            }
            Event::GlobalAvailable { id } => {
                if let Some(g) = a.globals.get_mut(&id) {
                    g.status = GlobalClusterStatus::Available;
                }
            }
            Event::GlobalUpgraded { id, version } => {
                let Some(g) = a.globals.get_mut(&id) else {
                    return;
                };
                g.status = GlobalClusterStatus::Available;
                g.engine_version = version.clone();
                for m in &g.members {
                    let Some((r, cid)) = parse_cluster_arn(&m.cluster_arn) else {
                        continue;
                    };
                    if let Some(c) = a.clusters.get_mut(&AuroraWorld::key(&r, &cid)) {
                        c.status = ClusterStatus::Available;
                        c.engine_version = version.clone();
                    }
                }
            }
            Event::GlobalDeleted { id } => {
                a.globals.remove(&id);
            }
            Event::WriterMoved {
                global,
                to_arn,
                record,
            } => {
                if let Some(g) = a.globals.get_mut(&global) {
                    // The old writer stays a member and comes back as a
                    // secondary, reachable again once its region is.
                    for m in &mut g.members {
                        m.is_writer = m.cluster_arn == to_arn;
                    }
                    g.status = GlobalClusterStatus::Available;
                    g.failover = None;
                }
                if let Some(r) = a.failovers.get_mut(record) {
                    r.completed_at = Some(at);
                }
            }
        }
    }

    fn create_global_cluster(
        &mut self,
        request: &CreateGlobalClusterRequest,
        now: Timestamp,
    ) -> Result<GlobalCluster, CloudError> {
        let id = &request.global_cluster_id;
        if self.aurora.globals.contains_key(id) {
            return Err(CloudError::already_exists(
                "GlobalClusterAlreadyExistsFault",
                format!("Global cluster {id} already exists"),
            ));
        }
        let (region, source_id) =
            parse_cluster_arn(&request.source_cluster_arn).ok_or_else(|| {
                CloudError::refused(
                    "InvalidParameterValue",
                    format!("{} is not a DB cluster ARN", request.source_cluster_arn),
                )
            })?;
        let source = self
            .aurora
            .clusters
            .get(&AuroraWorld::key(&region, &source_id))
            .ok_or_else(|| cluster_not_found(&source_id))?;
        if source.status != ClusterStatus::Available {
            return Err(busy_cluster(&source_id, &source.status));
        }
        if let Some(other) = &source.global_cluster_id {
            return Err(CloudError::invalid_state(
                "InvalidDBClusterStateFault",
                format!("DB cluster {source_id} is already a member of global cluster {other}"),
            ));
        }
        let global = SimGlobal {
            id: id.clone(),
            status: GlobalClusterStatus::Creating,
            engine: source.engine.clone(),
            engine_version: source.engine_version.clone(),
            members: vec![GlobalMember {
                cluster_arn: request.source_cluster_arn.clone(),
                region: region.clone(),
                is_writer: true,
            }],
            deletion_protection: request.deletion_protection,
            failover: None,
        };
        self.aurora.globals.insert(id.clone(), Box::new(global));
        if let Some(c) = self
            .aurora
            .clusters
            .get_mut(&AuroraWorld::key(&region, &source_id))
        {
            c.global_cluster_id = Some(id.clone());
        }
        let after = self.duration(
            &region,
            Op::CreateGlobalCluster,
            self.durations.global_create,
        );
        self.schedule(now, after, Event::GlobalAvailable { id: id.clone() });
        Ok(self.aurora.global_view(id).expect("just inserted"))
    }

    /// AWS's rules for `ModifyGlobalCluster`: deletion protection changes at
    /// once; a new engine version upgrades every member together, only
    /// forward, across a major version only with `AllowMajorVersionUpgrade`,
    /// and only while every member is available and reachable.
    fn modify_global_cluster(
        &mut self,
        region: &str,
        request: &ModifyGlobalClusterRequest,
        now: Timestamp,
    ) -> Result<GlobalCluster, CloudError> {
        let id = &request.global_cluster_id;
        let g = self
            .aurora
            .globals
            .get(id)
            .ok_or_else(|| global_not_found(id))?;
        if g.status != GlobalClusterStatus::Available {
            return Err(CloudError::busy(
                "InvalidGlobalClusterStateFault",
                format!("Global cluster {id} is {}", g.status),
            ));
        }
        let upgrade = match &request.engine_version {
            None => None,
            Some(v) => {
                let target = resolve_version(&g.engine, v)?;
                let major = major_of(&target) != major_of(&g.engine_version);
                if major && !request.allow_major_version_upgrade {
                    return Err(CloudError::refused(
                        "InvalidParameterCombination",
                        format!(
                            "The AllowMajorVersionUpgrade flag must be present when upgrading global cluster {id} from {} to {target}",
                            g.engine_version
                        ),
                    ));
                }
                if version_key(&target) < version_key(&g.engine_version) {
                    return Err(CloudError::refused(
                        "InvalidParameterCombination",
                        format!(
                            "Cannot upgrade global cluster {id} from {} to {target}",
                            g.engine_version
                        ),
                    ));
                }
                for m in &g.members {
                    if self.outages.contains_key(&m.region) {
                        return Err(CloudError::invalid_state(
                            "InvalidGlobalClusterStateFault",
                            format!("member {} in {} is unreachable", m.cluster_arn, m.region),
                        ));
                    }
                    let (r, cid) =
                        parse_cluster_arn(&m.cluster_arn).expect("members hold cluster ARNs");
                    match self.aurora.clusters.get(&AuroraWorld::key(&r, &cid)) {
                        Some(c) if c.status == ClusterStatus::Available => {}
                        Some(c) => return Err(busy_cluster(&cid, &c.status)),
                        None => return Err(cluster_not_found(&cid)),
                    }
                }
                (target != g.engine_version).then_some(target)
            }
        };
        let members: Vec<String> = g.members.iter().map(|m| m.cluster_arn.clone()).collect();
        let g = self.aurora.globals.get_mut(id).expect("checked above");
        if let Some(protection) = request.deletion_protection {
            g.deletion_protection = protection;
        }
        if let Some(version) = upgrade {
            g.status = GlobalClusterStatus::Upgrading;
            for arn in &members {
                let (r, cid) = parse_cluster_arn(arn).expect("members hold cluster ARNs");
                if let Some(c) = self.aurora.clusters.get_mut(&AuroraWorld::key(&r, &cid)) {
                    c.status = ClusterStatus::Upgrading;
                }
            }
            let after = self.duration(
                region,
                Op::ModifyGlobalCluster,
                self.durations.engine_upgrade,
            );
            self.schedule(
                now,
                after,
                Event::GlobalUpgraded {
                    id: id.clone(),
                    version,
                },
            );
        }
        Ok(self.aurora.global_view(id).expect("exists"))
    }

    fn delete_global_cluster(
        &mut self,
        region: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<(), CloudError> {
        let g = self
            .aurora
            .globals
            .get_mut(id)
            .ok_or_else(|| global_not_found(id))?;
        if g.status == GlobalClusterStatus::Deleting {
            return Ok(());
        }
        if !g.members.is_empty() {
            return Err(CloudError::invalid_state(
                "InvalidGlobalClusterStateFault",
                format!("Global cluster {id} is not empty: remove its members first"),
            ));
        }
        if g.deletion_protection {
            return Err(CloudError::refused(
                "InvalidParameterCombination",
                format!(
                    "Cannot delete protected global cluster {id}; disable deletion protection first"
                ),
            ));
        }
        g.status = GlobalClusterStatus::Deleting;
        let after = self.duration(
            region,
            Op::DeleteGlobalCluster,
            self.durations.global_delete,
        );
        self.schedule(now, after, Event::GlobalDeleted { id: id.to_string() });
        Ok(())
    }

    fn remove_from_global_cluster(
        &mut self,
        region: &str,
        global_id: &str,
        arn: &str,
        now: Timestamp,
    ) -> Result<(), CloudError> {
        let g = self
            .aurora
            .globals
            .get_mut(global_id)
            .ok_or_else(|| global_not_found(global_id))?;
        let Some(index) = g.members.iter().position(|m| m.cluster_arn == arn) else {
            return Err(CloudError::not_found(
                "DBClusterNotFoundFault",
                format!("{arn} is not a member of global cluster {global_id}"),
            ));
        };
        if g.status != GlobalClusterStatus::Available {
            return Err(CloudError::busy(
                "InvalidGlobalClusterStateFault",
                format!("Global cluster {global_id} is {}", g.status),
            ));
        }
        if g.members[index].is_writer && g.members.len() > 1 {
            return Err(CloudError::invalid_state(
                "InvalidGlobalClusterStateFault",
                format!(
                    "The writer of global cluster {global_id} can be removed only after its secondaries"
                ),
            ));
        }
        g.members.remove(index);
        let (cluster_region, cluster_id) =
            parse_cluster_arn(arn).expect("members hold cluster ARNs");
        if let Some(c) = self
            .aurora
            .clusters
            .get_mut(&AuroraWorld::key(&cluster_region, &cluster_id))
        {
            c.status = ClusterStatus::Modifying;
        }
        let after = self.duration(
            region,
            Op::RemoveFromGlobalCluster,
            self.durations.global_detach,
        );
        self.schedule(
            now,
            after,
            Event::ClusterDetached {
                region: cluster_region,
                id: cluster_id,
            },
        );
        Ok(())
    }

    /// Checks shared by failover and switchover; returns the writer's and
    /// the target's regions.
    fn check_writer_change(
        &self,
        global_id: &str,
        target_arn: &str,
    ) -> Result<(String, String), CloudError> {
        let g = self
            .aurora
            .globals
            .get(global_id)
            .ok_or_else(|| global_not_found(global_id))?;
        if g.status != GlobalClusterStatus::Available {
            return Err(CloudError::busy(
                "InvalidGlobalClusterStateFault",
                format!("Global cluster {global_id} is {}", g.status),
            ));
        }
        let target = g
            .members
            .iter()
            .find(|m| m.cluster_arn == target_arn)
            .ok_or_else(|| {
                CloudError::refused(
                    "InvalidParameterValue",
                    format!("{target_arn} is not a member of global cluster {global_id}"),
                )
            })?;
        if target.is_writer {
            return Err(CloudError::refused(
                "InvalidParameterValue",
                format!("{target_arn} is already the writer of global cluster {global_id}"),
            ));
        }
        if self.outages.contains_key(&target.region) {
            return Err(CloudError::busy(
                "InvalidDBClusterStateFault",
                format!("{target_arn} cannot be reached"),
            ));
        }
        let (region, id) = parse_cluster_arn(target_arn).expect("members hold cluster ARNs");
        match self.aurora.clusters.get(&AuroraWorld::key(&region, &id)) {
            Some(c) if c.status == ClusterStatus::Available => {}
            Some(c) => return Err(busy_cluster(&id, &c.status)),
            None => return Err(cluster_not_found(&id)),
        }
        let from = g.writer_region().unwrap_or_default();
        Ok((from, target.region.clone()))
    }

    fn failover_global_cluster(
        &mut self,
        region: &str,
        global_id: &str,
        target_arn: &str,
        now: Timestamp,
    ) -> Result<(), CloudError> {
        let (from, to) = self.check_writer_change(global_id, target_arn)?;
        // Writes that had not reached the target when the writer stopped
        // are lost: the target's lag when it is promoted.
        let loss = self.lag_of(&to);
        let from_arn = self.writer_arn(global_id);
        self.aurora.failovers.push(FailoverRecord {
            global_cluster_id: global_id.to_string(),
            from_region: from,
            to_region: to,
            allow_data_loss: true,
            requested_at: now,
            completed_at: None,
            data_loss_window: loss,
        });
        let record = self.aurora.failovers.len() - 1;
        let g = self
            .aurora
            .globals
            .get_mut(global_id)
            .expect("checked above");
        g.status = GlobalClusterStatus::FailingOver;
        g.failover = Some(GlobalFailoverState {
            status: GlobalFailoverStatus::FailingOver,
            from_cluster_arn: from_arn,
            to_cluster_arn: target_arn.to_string(),
            allow_data_loss: true,
        });
        let after = self.duration(
            region,
            Op::FailoverGlobalCluster,
            self.durations.global_failover,
        );
        self.schedule(
            now,
            after,
            Event::WriterMoved {
                global: global_id.to_string(),
                to_arn: target_arn.to_string(),
                record,
            },
        );
        Ok(())
    }

    fn switchover_global_cluster(
        &mut self,
        region: &str,
        global_id: &str,
        target_arn: &str,
        now: Timestamp,
    ) -> Result<(), CloudError> {
        let (from, to) = self.check_writer_change(global_id, target_arn)?;
        let g = self.aurora.globals.get(global_id).expect("checked above");
        // A switchover needs every member healthy and on one version: it
        // demotes the writer only once the target has caught up.
        for m in &g.members {
            if self.outages.contains_key(&m.region) {
                return Err(CloudError::invalid_state(
                    "InvalidGlobalClusterStateFault",
                    format!(
                        "member {} in {} is unreachable; use a failover",
                        m.cluster_arn, m.region
                    ),
                ));
            }
            let (r, id) = parse_cluster_arn(&m.cluster_arn).expect("members hold cluster ARNs");
            let Some(c) = self.aurora.clusters.get(&AuroraWorld::key(&r, &id)) else {
                return Err(cluster_not_found(&id));
            };
            if c.status != ClusterStatus::Available {
                return Err(CloudError::invalid_state(
                    "InvalidGlobalClusterStateFault",
                    format!("member {id} is {}", c.status),
                ));
            }
            if c.engine_version != g.engine_version {
                return Err(CloudError::invalid_state(
                    "InvalidGlobalClusterStateFault",
                    format!(
                        "member {id} runs {} but the global cluster runs {}",
                        c.engine_version, g.engine_version
                    ),
                ));
            }
        }
        let catch_up = self.lag_of(&to);
        let from_arn = self.writer_arn(global_id);
        self.aurora.failovers.push(FailoverRecord {
            global_cluster_id: global_id.to_string(),
            from_region: from,
            to_region: to,
            allow_data_loss: false,
            requested_at: now,
            completed_at: None,
            data_loss_window: Duration::ZERO,
        });
        let record = self.aurora.failovers.len() - 1;
        let g = self
            .aurora
            .globals
            .get_mut(global_id)
            .expect("checked above");
        g.status = GlobalClusterStatus::SwitchingOver;
        g.failover = Some(GlobalFailoverState {
            status: GlobalFailoverStatus::SwitchingOver,
            from_cluster_arn: from_arn,
            to_cluster_arn: target_arn.to_string(),
            allow_data_loss: false,
        });
        let after = self.duration(
            region,
            Op::SwitchoverGlobalCluster,
            self.durations.global_switchover,
        ) + catch_up;
        self.schedule(
            now,
            after,
            Event::WriterMoved {
                global: global_id.to_string(),
                to_arn: target_arn.to_string(),
                record,
            },
        );
        Ok(())
    }

    fn writer_arn(&self, global_id: &str) -> String {
        self.aurora
            .globals
            .get(global_id)
            .and_then(|g| g.members.iter().find(|m| m.is_writer))
            .map(|m| m.cluster_arn.clone())
            .unwrap_or_default()
    }

    fn lag_of(&self, region: &str) -> Duration {
        self.aurora
            .lag
            .get(region)
            .copied()
            .unwrap_or(self.durations.replication_lag)
    }

    fn create_cluster(
        &mut self,
        region: &str,
        request: &CreateClusterRequest,
        now: Timestamp,
    ) -> Result<Cluster, CloudError> {
        let id = &request.cluster_id;
        if self
            .aurora
            .clusters
            .contains_key(&AuroraWorld::key(region, id))
        {
            return Err(CloudError::already_exists(
                "DBClusterAlreadyExistsFault",
                format!("DB cluster {id} already exists"),
            ));
        }
        let mut version = resolve_version(&request.engine, &request.engine_version)?;
        self.check_network(
            region,
            request.subnet_group_name.as_deref(),
            &request.security_group_ids,
        )?;
        let kms_key_id = match &request.kms_key_id {
            Some(key) if !request.storage_encrypted => {
                return Err(CloudError::refused(
                    "InvalidParameterCombination",
                    format!("KmsKeyId {key} requires StorageEncrypted"),
                ));
            }
            Some(key) => Some(resolve_kms_key(region, key)?),
            None if request.storage_encrypted => {
                Some(format!("arn:aws:kms:{region}:{ACCOUNT}:key/sim-aws-rds"))
            }
            None => None,
        };
        let credentials =
            request.master_username.is_some() || request.master_user_password.is_some();
        let mut joins_as_secondary = false;
        if let Some(gid) = &request.global_cluster_id {
            let g = self
                .aurora
                .globals
                .get(gid)
                .ok_or_else(|| global_not_found(gid))?;
            if g.status != GlobalClusterStatus::Available {
                return Err(CloudError::busy(
                    "InvalidGlobalClusterStateFault",
                    format!("Global cluster {gid} is {}", g.status),
                ));
            }
            if g.engine != request.engine {
                return Err(CloudError::refused(
                    "InvalidParameterCombination",
                    format!(
                        "Global cluster {gid} runs {}, not {}",
                        g.engine, request.engine
                    ),
                ));
            }
            if g.members.iter().any(|m| m.region == region) {
                return Err(CloudError::refused(
                    "InvalidParameterCombination",
                    format!("Global cluster {gid} already has a member in {region}"),
                ));
            }
            if !g.members.is_empty() {
                joins_as_secondary = true;
                if credentials {
                    return Err(CloudError::refused(
                        "InvalidParameterCombination",
                        "A secondary cluster of a global database cannot be created with master credentials",
                    ));
                }
                if version != g.engine_version {
                    return Err(CloudError::refused(
                        "InvalidParameterCombination",
                        format!(
                            "The engine version {version} of a secondary must match global cluster {gid} ({})",
                            g.engine_version
                        ),
                    ));
                }
            } else if major_of(&version) != major_of(&g.engine_version) {
                return Err(CloudError::refused(
                    "InvalidParameterCombination",
                    format!("Global cluster {gid} runs {}", g.engine_version),
                ));
            } else {
                version = g.engine_version.clone();
            }
        }
        if !joins_as_secondary {
            if request.master_username.is_none() {
                return Err(CloudError::refused(
                    "InvalidParameterValue",
                    "The parameter MasterUsername must be provided",
                ));
            }
            if request.master_user_password.is_none() {
                return Err(CloudError::refused(
                    "InvalidParameterCombination",
                    "A master password is required: set MasterUserPassword",
                ));
            }
        }
        let arn = cluster_arn(region, id);
        if let Some(gid) = &request.global_cluster_id {
            let g = self.aurora.globals.get_mut(gid).expect("checked above");
            g.members.push(GlobalMember {
                cluster_arn: arn,
                region: region.to_string(),
                is_writer: !joins_as_secondary,
            });
        }
        self.aurora.clusters.insert(
            AuroraWorld::key(region, id),
            Box::new(SimCluster {
                id: id.clone(),
                region: region.to_string(),
                status: ClusterStatus::Creating,
                engine: request.engine.clone(),
                engine_version: version,
                kms_key_id,
                storage_encrypted: request.storage_encrypted,
                deletion_protection: request.deletion_protection,
                tags: request.tags.clone(),
                global_cluster_id: request.global_cluster_id.clone(),
                created_at: now,
                writer_instance: None,
                subnet_group: request.subnet_group_name.clone(),
                security_group_ids: {
                    let mut ids = request.security_group_ids.clone();
                    ids.sort();
                    ids
                },
                parameter_group: request.parameter_group_name.clone(),
                port: request.port,
            }),
        );
        let base = if joins_as_secondary {
            self.durations.secondary_cluster_create
        } else {
            self.durations.cluster_create
        };
        let after = self.duration(region, Op::CreateDBCluster, base);
        self.schedule(
            now,
            after,
            Event::ClusterAvailable {
                region: region.to_string(),
                id: id.clone(),
            },
        );
        Ok(self.aurora.cluster_view(region, id).expect("just inserted"))
    }

    fn modify_cluster(
        &mut self,
        region: &str,
        request: &ModifyClusterRequest,
        now: Timestamp,
    ) -> Result<Cluster, CloudError> {
        let id = &request.cluster_id;
        let key = AuroraWorld::key(region, id);
        let c = self
            .aurora
            .clusters
            .get(&key)
            .ok_or_else(|| cluster_not_found(id))?;
        if c.status != ClusterStatus::Available {
            return Err(busy_cluster(id, &c.status));
        }
        let upgrade = match &request.engine_version {
            Some(v) => {
                let target = resolve_version(&c.engine, v)?;
                if major_of(&target) != major_of(&c.engine_version) {
                    return Err(CloudError::refused(
                        "InvalidParameterCombination",
                        format!(
                            "The AllowMajorVersionUpgrade flag must be present when upgrading from {} to {target}",
                            c.engine_version
                        ),
                    ));
                }
                if version_key(&target) < version_key(&c.engine_version) {
                    return Err(CloudError::refused(
                        "InvalidParameterCombination",
                        format!(
                            "Cannot upgrade {} from {} to {target}",
                            c.engine, c.engine_version
                        ),
                    ));
                }
                (target != c.engine_version).then_some(target)
            }
            None => None,
        };
        if let Some(groups) = &request.security_group_ids {
            self.check_network(region, None, groups)?;
        }
        let c = self.aurora.clusters.get_mut(&key).expect("checked above");
        if let Some(protection) = request.deletion_protection {
            c.deletion_protection = protection;
        }
        if let Some(groups) = &request.security_group_ids {
            let mut groups = groups.clone();
            groups.sort();
            c.security_group_ids = groups;
        }
        if let Some(group) = &request.parameter_group_name {
            c.parameter_group = Some(group.clone());
        }
        if let Some(version) = upgrade {
            c.status = ClusterStatus::Upgrading;
            let after = self.duration(region, Op::ModifyDBCluster, self.durations.engine_upgrade);
            self.schedule(
                now,
                after,
                Event::ClusterUpgraded {
                    region: region.to_string(),
                    id: id.clone(),
                    version,
                },
            );
        }
        Ok(self.aurora.cluster_view(region, id).expect("exists"))
    }

    fn delete_cluster(
        &mut self,
        region: &str,
        request: &DeleteClusterRequest,
        now: Timestamp,
    ) -> Result<(), CloudError> {
        let id = &request.cluster_id;
        let key = AuroraWorld::key(region, id);
        let c = self
            .aurora
            .clusters
            .get(&key)
            .ok_or_else(|| cluster_not_found(id))?;
        if c.status == ClusterStatus::Deleting {
            return Ok(());
        }
        if c.deletion_protection {
            return Err(CloudError::refused(
                "InvalidParameterCombination",
                "Cannot delete protected Cluster, please disable deletion protection and try again.",
            ));
        }
        if let Some(g) = &c.global_cluster_id {
            return Err(CloudError::invalid_state(
                "InvalidDBClusterStateFault",
                format!("DB cluster {id} is a member of global cluster {g}; remove it first"),
            ));
        }
        if self
            .aurora
            .cluster_instances(region, id)
            .iter()
            .any(|i| i.status != InstanceStatus::Deleting)
        {
            return Err(CloudError::invalid_state(
                "InvalidDBClusterStateFault",
                "Cluster cannot be deleted, it still contains DB instances in non-deleting state.",
            ));
        }
        if c.status != ClusterStatus::Available {
            return Err(busy_cluster(id, &c.status));
        }
        if !request.skip_final_snapshot {
            let Some(snapshot) = &request.final_snapshot_id else {
                return Err(CloudError::refused(
                    "InvalidParameterCombination",
                    "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified",
                ));
            };
            let snapshot_key = AuroraWorld::key(region, snapshot);
            if self.aurora.snapshots.contains(&snapshot_key) {
                return Err(CloudError::already_exists(
                    "DBClusterSnapshotAlreadyExistsFault",
                    format!(
                        "Cannot create the cluster snapshot because one with the identifier {snapshot} already exists"
                    ),
                ));
            }
            self.aurora.snapshots.insert(snapshot_key);
        }
        self.aurora
            .clusters
            .get_mut(&key)
            .expect("checked above")
            .status = ClusterStatus::Deleting;
        let after = self.duration(region, Op::DeleteDBCluster, self.durations.cluster_delete);
        self.schedule(
            now,
            after,
            Event::ClusterDeleted {
                region: region.to_string(),
                id: id.clone(),
            },
        );
        Ok(())
    }

    fn add_tags(&mut self, region: &str, arn: &str, tags: &Tags) -> Result<(), CloudError> {
        let target = if let Some((_, id)) = arn.rsplit_once(":cluster:") {
            self.aurora
                .clusters
                .get_mut(&AuroraWorld::key(region, id))
                .map(|c| &mut c.tags)
        } else if let Some((_, id)) = arn.rsplit_once(":db:") {
            self.aurora
                .instances
                .get_mut(&AuroraWorld::key(region, id))
                .map(|i| &mut i.tags)
        } else {
            None
        };
        let target = target.ok_or_else(|| {
            CloudError::not_found(
                "DBClusterNotFoundFault",
                format!("resource {arn} not found"),
            )
        })?;
        target.extend(tags.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Ok(())
    }

    /// AWS's refusals of a subnet group or security group the account
    /// does not hold in the region.
    fn check_network(
        &self,
        region: &str,
        subnet_group: Option<&str>,
        security_groups: &[String],
    ) -> Result<(), CloudError> {
        if let Some(name) = subnet_group
            && !self.account.has_subnet_group(region, name)
        {
            return Err(CloudError::refused(
                "DBSubnetGroupNotFoundFault",
                format!("DB subnet group '{name}' does not exist."),
            ));
        }
        if let Some(id) = self.account.missing_security_group(region, security_groups) {
            return Err(CloudError::refused(
                "InvalidParameterValue",
                format!("Invalid security group, groupId= {id}"),
            ));
        }
        Ok(())
    }

    fn modify_instance(
        &mut self,
        region: &str,
        request: &ModifyInstanceRequest,
    ) -> Result<(), CloudError> {
        let instance = self
            .aurora
            .instances
            .get_mut(&AuroraWorld::key(region, &request.instance_id))
            .ok_or_else(|| {
                CloudError::not_found(
                    "DBInstanceNotFound",
                    format!("DBInstance {} not found.", request.instance_id),
                )
            })?;
        if instance.status != InstanceStatus::Available {
            return Err(CloudError::busy(
                "InvalidDBInstanceState",
                format!("DB instance {} is {}", instance.id, instance.status),
            ));
        }
        if let Some(group) = &request.parameter_group_name {
            instance.parameter_group = Some(group.clone());
        }
        Ok(())
    }

    fn create_instance(
        &mut self,
        region: &str,
        request: &CreateInstanceRequest,
        now: Timestamp,
    ) -> Result<Instance, CloudError> {
        let id = &request.instance_id;
        if self
            .aurora
            .instances
            .contains_key(&AuroraWorld::key(region, id))
        {
            return Err(CloudError::already_exists(
                "DBInstanceAlreadyExists",
                format!("DB instance {id} already exists"),
            ));
        }
        let cluster_key = AuroraWorld::key(region, &request.cluster_id);
        let c = self
            .aurora
            .clusters
            .get(&cluster_key)
            .ok_or_else(|| cluster_not_found(&request.cluster_id))?;
        if c.status == ClusterStatus::Deleting {
            return Err(busy_cluster(&c.id, &c.status));
        }
        if c.engine != request.engine {
            return Err(CloudError::refused(
                "InvalidParameterCombination",
                format!(
                    "DB cluster {} runs {}, not {}",
                    c.id, c.engine, request.engine
                ),
            ));
        }
        let class_ok = request
            .class
            .strip_prefix("db.")
            .and_then(|rest| rest.split_once('.'))
            .is_some_and(|(family, size)| !family.is_empty() && !size.is_empty());
        if !class_ok {
            return Err(CloudError::refused(
                "InvalidParameterValue",
                format!("Invalid DB instance class: {}", request.class),
            ));
        }
        self.aurora.instance_seq += 1;
        let seq = self.aurora.instance_seq;
        self.aurora.add_instance(SimInstance {
            id: id.clone(),
            region: region.to_string(),
            cluster_id: request.cluster_id.clone(),
            status: InstanceStatus::Creating,
            class: request.class.clone(),
            tags: request.tags.clone(),
            seq,
            parameter_group: request.parameter_group_name.clone(),
        });
        let c = self
            .aurora
            .clusters
            .get_mut(&cluster_key)
            .expect("checked above");
        if c.writer_instance.is_none() {
            c.writer_instance = Some(id.clone());
        }
        let after = self.duration(region, Op::CreateDBInstance, self.durations.instance_create);
        self.schedule(
            now,
            after,
            Event::InstanceAvailable {
                region: region.to_string(),
                id: id.clone(),
            },
        );
        Ok(self
            .aurora
            .instances_view(region, &request.cluster_id)
            .into_iter()
            .find(|i| &i.id == id)
            .expect("just inserted"))
    }

    fn delete_instance(
        &mut self,
        region: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<(), CloudError> {
        let i = self
            .aurora
            .instances
            .get_mut(&AuroraWorld::key(region, id))
            .ok_or_else(|| {
                CloudError::not_found("DBInstanceNotFound", format!("DBInstance {id} not found"))
            })?;
        match &i.status {
            InstanceStatus::Deleting => return Ok(()),
            InstanceStatus::Available | InstanceStatus::Failed | InstanceStatus::Stopped => {}
            other => {
                return Err(CloudError::busy(
                    "InvalidDBInstanceState",
                    format!("DB instance {id} is {other}"),
                ));
            }
        }
        i.status = InstanceStatus::Deleting;
        let after = self.duration(region, Op::DeleteDBInstance, self.durations.instance_delete);
        self.schedule(
            now,
            after,
            Event::InstanceDeleted {
                region: region.to_string(),
                id: id.to_string(),
            },
        );
        Ok(())
    }

    fn replication_lag(
        &self,
        region: &str,
        cluster_id: &str,
    ) -> Result<Option<Duration>, CloudError> {
        let c = self
            .aurora
            .clusters
            .get(&AuroraWorld::key(region, cluster_id))
            .ok_or_else(|| cluster_not_found(cluster_id))?;
        let Some(g) = c
            .global_cluster_id
            .as_ref()
            .and_then(|g| self.aurora.globals.get(g))
        else {
            return Ok(None);
        };
        let arn = cluster_arn(region, cluster_id);
        let Some(member) = g.members.iter().find(|m| m.cluster_arn == arn) else {
            return Ok(None);
        };
        if member.is_writer {
            return Ok(None);
        }
        // With the writer's region unreachable nothing replicates and
        // CloudWatch has no data points to report.
        let writer_out = g
            .writer_region()
            .is_some_and(|r| self.outages.contains_key(&r) || self.partitioned(&r, region));
        if writer_out || c.status == ClusterStatus::Creating {
            return Ok(None);
        }
        Ok(Some(self.lag_of(region)))
    }
}

impl SimGlobal {
    fn writer_region(&self) -> Option<String> {
        self.members
            .iter()
            .find(|m| m.is_writer)
            .map(|m| m.region.clone())
    }
}

/// The Aurora API of one region of a [`SimCloud`].
pub(crate) struct SimAuroraPort {
    cloud: SimCloud,
    region: String,
}

impl SimAuroraPort {
    pub(crate) fn new(cloud: SimCloud, region: &str) -> Self {
        Self {
            cloud,
            region: region.to_string(),
        }
    }
}

#[async_trait]
impl AuroraPort for SimAuroraPort {
    fn region(&self) -> &str {
        &self.region
    }

    async fn describe_global_cluster(&self, id: &str) -> Result<Option<GlobalCluster>, CloudError> {
        self.cloud
            .call(&self.region, Op::DescribeGlobalClusters, |w, _| {
                Ok(w.aurora.global_view(id))
            })
    }

    async fn create_global_cluster(
        &self,
        request: &CreateGlobalClusterRequest,
    ) -> Result<GlobalCluster, CloudError> {
        self.cloud
            .call(&self.region, Op::CreateGlobalCluster, |w, now| {
                w.create_global_cluster(request, now)
            })
    }

    async fn modify_global_cluster(
        &self,
        request: &ModifyGlobalClusterRequest,
    ) -> Result<GlobalCluster, CloudError> {
        let region = self.region.as_str();
        self.cloud.call(region, Op::ModifyGlobalCluster, |w, now| {
            w.modify_global_cluster(region, request, now)
        })
    }

    async fn delete_global_cluster(&self, id: &str) -> Result<(), CloudError> {
        let region = self.region.as_str();
        self.cloud.call(region, Op::DeleteGlobalCluster, |w, now| {
            w.delete_global_cluster(region, id, now)
        })
    }

    async fn remove_from_global_cluster(
        &self,
        global_cluster_id: &str,
        cluster_arn: &str,
    ) -> Result<(), CloudError> {
        let region = self.region.as_str();
        self.cloud
            .call(region, Op::RemoveFromGlobalCluster, |w, now| {
                w.remove_from_global_cluster(region, global_cluster_id, cluster_arn, now)
            })
    }

    async fn failover_global_cluster(
        &self,
        global_cluster_id: &str,
        target_cluster_arn: &str,
        allow_data_loss: bool,
    ) -> Result<(), CloudError> {
        let region = self.region.as_str();
        self.cloud
            .call(region, Op::FailoverGlobalCluster, |w, now| {
                if allow_data_loss {
                    w.failover_global_cluster(region, global_cluster_id, target_cluster_arn, now)
                } else {
                    // Without AllowDataLoss, AWS runs a switchover.
                    w.switchover_global_cluster(region, global_cluster_id, target_cluster_arn, now)
                }
            })
    }

    async fn switchover_global_cluster(
        &self,
        global_cluster_id: &str,
        target_cluster_arn: &str,
    ) -> Result<(), CloudError> {
        let region = self.region.as_str();
        self.cloud
            .call(region, Op::SwitchoverGlobalCluster, |w, now| {
                w.switchover_global_cluster(region, global_cluster_id, target_cluster_arn, now)
            })
    }

    async fn describe_cluster(&self, id: &str) -> Result<Option<Cluster>, CloudError> {
        let region = self.region.as_str();
        self.cloud.call(region, Op::DescribeDBClusters, |w, _| {
            Ok(w.aurora.cluster_view(region, id))
        })
    }

    async fn describe_global_clusters(&self) -> Result<Vec<GlobalCluster>, CloudError> {
        self.cloud.call_pages(
            &self.region,
            Op::DescribeGlobalClusters,
            |g| &g.id,
            |w, after| {
                w.aurora
                    .globals
                    .keys()
                    .filter(|id| after.is_none_or(|after| id.as_str() > after))
                    .take(DESCRIBE_PAGE)
                    .filter_map(|id| w.aurora.global_view(id))
                    .collect()
            },
        )
    }

    async fn describe_clusters(&self) -> Result<Vec<Cluster>, CloudError> {
        let region = self.region.as_str();
        self.cloud.call_pages(
            region,
            Op::DescribeDBClusters,
            |c| &c.id,
            |w, after| {
                page_of(&w.aurora.clusters, region, after, |id| {
                    w.aurora.cluster_view(region, id)
                })
            },
        )
    }

    async fn create_cluster(&self, request: &CreateClusterRequest) -> Result<Cluster, CloudError> {
        let region = self.region.as_str();
        self.cloud.call(region, Op::CreateDBCluster, |w, now| {
            w.create_cluster(region, request, now)
        })
    }

    async fn modify_cluster(&self, request: &ModifyClusterRequest) -> Result<Cluster, CloudError> {
        let region = self.region.as_str();
        self.cloud.call(region, Op::ModifyDBCluster, |w, now| {
            w.modify_cluster(region, request, now)
        })
    }

    async fn delete_cluster(&self, request: &DeleteClusterRequest) -> Result<(), CloudError> {
        let region = self.region.as_str();
        self.cloud.call(region, Op::DeleteDBCluster, |w, now| {
            w.delete_cluster(region, request, now)
        })
    }

    async fn add_tags(&self, resource_arn: &str, tags: &Tags) -> Result<(), CloudError> {
        let region = self.region.as_str();
        self.cloud.call(region, Op::AddTagsToResource, |w, _| {
            w.add_tags(region, resource_arn, tags)
        })
    }

    async fn list_instances(&self, cluster_id: &str) -> Result<Vec<Instance>, CloudError> {
        let region = self.region.as_str();
        self.cloud.call(region, Op::DescribeDBInstances, |w, _| {
            Ok(w.aurora.instances_view(region, cluster_id))
        })
    }

    async fn describe_instances(&self) -> Result<Vec<RegionInstance>, CloudError> {
        let region = self.region.as_str();
        let mut all = self.cloud.call_pages(
            region,
            Op::DescribeDBInstances,
            |(_, i): &(u64, RegionInstance)| &i.instance.id,
            |w, after| w.aurora.instances_page(region, after),
        )?;
        all.sort_by_key(|(seq, _)| *seq);
        Ok(all.into_iter().map(|(_, i)| i).collect())
    }

    async fn create_instance(
        &self,
        request: &CreateInstanceRequest,
    ) -> Result<Instance, CloudError> {
        let region = self.region.as_str();
        self.cloud.call(region, Op::CreateDBInstance, |w, now| {
            w.create_instance(region, request, now)
        })
    }

    async fn delete_instance(&self, instance_id: &str) -> Result<(), CloudError> {
        let region = self.region.as_str();
        self.cloud.call(region, Op::DeleteDBInstance, |w, now| {
            w.delete_instance(region, instance_id, now)
        })
    }

    async fn modify_instance(&self, request: &ModifyInstanceRequest) -> Result<(), CloudError> {
        let region = self.region.as_str();
        self.cloud.call(region, Op::ModifyDBInstance, |w, _| {
            w.modify_instance(region, request)
        })
    }

    async fn describe_subnet_group(&self, name: &str) -> Result<Option<SubnetGroup>, CloudError> {
        let region = self.region.as_str();
        self.cloud.call(region, Op::DescribeDBSubnetGroups, |w, _| {
            Ok(w.account
                .has_subnet_group(region, name)
                .then(|| SubnetGroup {
                    name: name.to_string(),
                    vpc_id: Some(format!("vpc-sim-{region}")),
                }))
        })
    }

    async fn default_engine_version(
        &self,
        engine: &str,
        major: &str,
    ) -> Result<Option<String>, CloudError> {
        let region = self.region.as_str();
        self.cloud
            .call(region, Op::DescribeDBEngineVersions, |_, _| {
                Ok(default_version(engine, major))
            })
    }

    async fn replication_lag(
        &self,
        cluster_id: &str,
        _now: Timestamp,
    ) -> Result<Option<Duration>, CloudError> {
        // The simulated metric is always current; `now` only bounds the
        // query window of the real CloudWatch call.
        let region = self.region.as_str();
        self.cloud.call(region, Op::GetMetricData, |w, _| {
            w.replication_lag(region, cluster_id)
        })
    }

    async fn replication_lags(
        &self,
        cluster_ids: &[String],
        _now: Timestamp,
    ) -> Result<BTreeMap<String, Option<Duration>>, CloudError> {
        let region = self.region.as_str();
        let mut lags = BTreeMap::new();
        // One call per batch, as CloudWatch answers; a cluster it has no
        // data points for (gone, the writer, not replicating) is `None`.
        for batch in cluster_ids.chunks(METRIC_QUERIES_PER_CALL) {
            let answered = self.cloud.call(region, Op::GetMetricData, |w, _| {
                Ok(batch
                    .iter()
                    .map(|id| (id.clone(), w.replication_lag(region, id).ok().flatten()))
                    .collect::<Vec<_>>())
            })?;
            lags.extend(answered);
        }
        Ok(lags)
    }
}
