//! Simulated ElastiCache: replication groups and Global Datastores with the
//! rules AWS documents for them.
//!
//! The AUTH token of a request is checked and then forgotten: the simulated
//! AWS keeps only whether AUTH is on, so a token cannot leak from here.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::jiff::Timestamp;

use crate::cloud::aurora::port::METRIC_QUERIES_PER_CALL;
use crate::cloud::elasticache::check_auth_token;
use crate::cloud::elasticache::names::check_global_node_type;
use crate::cloud::elasticache::port::{
    AuthToken, AuthTokenUpdateStrategy, AutomaticFailoverStatus,
    CreateGlobalReplicationGroupRequest, CreateReplicationGroupRequest,
    DeleteReplicationGroupRequest, ElastiCachePort, Endpoint, GlobalMemberStatus,
    GlobalReplicationGroup, GlobalReplicationGroupInfo, GlobalReplicationGroupMember,
    GlobalReplicationGroupStatus, ModifyReplicationGroupRequest, NodeGroup, NodeGroupMember,
    NodeRole, ReplicationGroup, ReplicationGroupStatus, Tags,
};
use crate::cloud::{CloudError, arn_region};

use super::{ACCOUNT, DESCRIBE_PAGE, Op, SimCloud, World, page_of};

/// A `FailoverGlobalReplicationGroup` the simulated AWS carried out.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheFailoverRecord {
    pub global_replication_group_id: String,
    pub from_region: String,
    pub to_region: String,
    pub requested_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    /// Writes younger than this on the old primary had not reached the new
    /// one: its replication lag when the failover was requested.
    pub data_loss_window: Duration,
}

/// The Global Datastore id prefix AWS gives each region ("Using the AWS CLI
/// with global datastores" in the ElastiCache user guide).
const DOCUMENTED_PREFIXES: [(&str, &str); 19] = [
    ("us-east-1", "ldgnf"),
    ("us-east-2", "fpkhr"),
    ("us-west-1", "virxk"),
    ("us-west-2", "sgaui"),
    ("ca-central-1", "bxodz"),
    ("ap-south-1", "erpgt"),
    ("ap-northeast-1", "quwsw"),
    ("ap-northeast-2", "lfqnh"),
    ("ap-northeast-3", "nlapn"),
    ("ap-southeast-1", "vlqxn"),
    ("ap-southeast-2", "vbgxd"),
    ("eu-central-1", "iudkw"),
    ("eu-west-1", "gxeiz"),
    ("eu-west-2", "okuqm"),
    ("eu-west-3", "fgjhi"),
    ("sa-east-1", "juxlw"),
    ("cn-north-1", "emvgo"),
    ("cn-northwest-1", "ckbem"),
    ("ap-east-1", "knjmp"),
];

/// The prefix of a Global Datastore created in `region`: AWS's where the
/// user guide lists it, else five letters derived from the region name (a
/// stand-in with the same shape, no dash).
pub fn global_datastore_prefix(region: &str) -> String {
    if let Some((_, prefix)) = DOCUMENTED_PREFIXES.iter().find(|(r, _)| *r == region) {
        return (*prefix).to_string();
    }
    let mut state: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in region.bytes() {
        state = (state ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..5)
        .map(|i| {
            let letter = (state >> (i * 8)) % 26;
            char::from(b'a' + u8::try_from(letter).expect("below 26"))
        })
        .collect()
}

/// Engine versions the simulated AWS offers, default first.
fn engine_versions(engine: &str) -> Option<&'static [&'static str]> {
    match engine {
        "redis" => Some(&["7.1", "7.0", "6.2", "6.0", "5.0.6", "4.0.10"]),
        "valkey" => Some(&["8.0", "7.2"]),
        _ => None,
    }
}

/// Numeric components, for comparing versions.
fn version_key(version: &str) -> Vec<u64> {
    version.split('.').filter_map(|c| c.parse().ok()).collect()
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct CacheWorld {
    // The maps' values are boxed: a B-tree node has room for eleven
    // whatever it holds, and a map filled in key order keeps its nodes
    // about half full, so inline values of a few hundred bytes were mostly
    // empty slots (in the operator's memory with `--cloud simulated`).
    pub(crate) globals: BTreeMap<String, Box<SimGlobal>>,
    /// Keyed by (region, identifier): identifiers are unique per region.
    #[serde(with = "super::persist::entries")]
    pub(crate) groups: BTreeMap<(String, String), Box<SimGroup>>,
    pub(crate) snapshots: BTreeSet<(String, String)>,
    pub(crate) lag: BTreeMap<String, Duration>,
    pub(crate) failovers: Vec<CacheFailoverRecord>,
    /// The Global Datastore each member belongs to, keyed by (region,
    /// replication group id): describing a group must not scan every
    /// Global Datastore of every shop. Derived from `globals`, so not
    /// saved; see [`CacheWorld::reindex`].
    #[serde(skip)]
    global_of: BTreeMap<(String, String), String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct SimGlobal {
    id: String,
    suffix: String,
    status: GlobalReplicationGroupStatus,
    description: String,
    engine: String,
    engine_version: String,
    node_type: String,
    shards: u16,
    cluster_enabled: bool,
    auth: bool,
    transit: bool,
    at_rest: bool,
    tags: Tags,
    members: Vec<SimMember>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SimMember {
    region: String,
    group_id: String,
    is_primary: bool,
    status: GlobalMemberStatus,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct SimGroup {
    id: String,
    status: ReplicationGroupStatus,
    description: String,
    engine: String,
    engine_version: String,
    node_type: String,
    shards: u16,
    replicas: u8,
    cluster_enabled: bool,
    auth: bool,
    transit: bool,
    at_rest: bool,
    automatic_failover: AutomaticFailoverStatus,
    multi_az: bool,
    tags: Tags,
    created_at: Timestamp,
    /// The AUTH tokens the group accepts (at most two), oldest first, as
    /// digests: the simulation keeps no token.
    #[serde(default)]
    tokens: Vec<String>,
    /// The last `ROTATE` added the first token of a group that had none:
    /// unauthenticated connections still work until `SET`.
    #[serde(default)]
    token_optional: bool,
    /// The VPC security groups of the nodes, sorted.
    #[serde(default)]
    security_groups: Vec<String>,
}

/// A completion scheduled by a long operation.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) enum Event {
    GroupAvailable {
        region: String,
        id: String,
    },
    MemberAssociated {
        global: String,
        region: String,
        id: String,
    },
    GlobalAvailable {
        id: String,
    },
    ReplicasChanged {
        region: String,
        id: String,
        count: u8,
    },
    GroupModified {
        region: String,
        id: String,
    },
    GroupDeleted {
        region: String,
        id: String,
    },
    MemberDisassociated {
        global: String,
        region: String,
        id: String,
    },
    GlobalDeleted {
        id: String,
    },
    PrimaryMoved {
        global: String,
        to_region: String,
        record: usize,
    },
}

fn group_arn(region: &str, id: &str) -> String {
    format!("arn:aws:elasticache:{region}:{ACCOUNT}:replicationgroup:{id}")
}

fn global_arn(id: &str) -> String {
    format!("arn:aws:elasticache::{ACCOUNT}:globalreplicationgroup:{id}")
}

fn group_not_found(id: &str) -> CloudError {
    CloudError::not_found(
        "ReplicationGroupNotFoundFault",
        format!("Replication group {id} not found."),
    )
}

fn global_not_found(id: &str) -> CloudError {
    CloudError::not_found(
        "GlobalReplicationGroupNotFoundFault",
        format!("Global datastore {id} not found."),
    )
}

fn busy_group(id: &str, status: &str) -> CloudError {
    CloudError::busy(
        "InvalidReplicationGroupState",
        format!("Replication group {id} is not in available state (it is {status})."),
    )
}

fn busy_global(id: &str, status: &str) -> CloudError {
    CloudError::busy(
        "InvalidGlobalReplicationGroupState",
        format!(
            "Global datastore {id} is not available or in primary-only state (it is {status})."
        ),
    )
}

fn combination(message: impl Into<String>) -> CloudError {
    CloudError::refused("InvalidParameterCombination", message)
}

fn value(message: impl Into<String>) -> CloudError {
    CloudError::refused("InvalidParameterValue", message)
}

/// ElastiCache's rules for a replication group identifier.
fn sorted(ids: &[String]) -> Vec<String> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    ids
}

/// A token as the simulation keeps it.
fn token_digest(token: &AuthToken) -> String {
    crate::cloud::elasticache::auth::fingerprint("sim", token)
}

/// AWS's rules for `AuthTokenUpdateStrategy`: in-transit encryption is
/// required; `ROTATE` adds a token (at most two, the oldest goes); `SET` is
/// allowed only after a `ROTATE`, with that same token, which is then the
/// only one. Returns the tokens after the call and whether the token is
/// still optional.
fn next_tokens(
    group: &SimGroup,
    token: &AuthToken,
    strategy: AuthTokenUpdateStrategy,
) -> Result<(Vec<String>, bool), CloudError> {
    if !group.transit {
        return Err(combination(
            "The AUTH token can be modified only when TransitEncryptionEnabled is true.",
        ));
    }
    check_auth_token(token.expose()).map_err(|why| value(format!("Invalid AuthToken: {why}.")))?;
    let digest = token_digest(token);
    match strategy {
        AuthTokenUpdateStrategy::Rotate => {
            let mut tokens = group.tokens.clone();
            let optional = tokens.is_empty();
            tokens.push(digest);
            if tokens.len() > 2 {
                tokens.remove(0);
            }
            Ok((tokens, optional))
        }
        AuthTokenUpdateStrategy::Set => {
            let rotated = group.tokens.len() == 2 || group.token_optional;
            if !rotated {
                return Err(combination(
                    "AuthTokenUpdateStrategy SET is allowed only after a ROTATE.",
                ));
            }
            if group.tokens.last() != Some(&digest) {
                return Err(value(
                    "AuthTokenUpdateStrategy SET must use the token of the last ROTATE.",
                ));
            }
            Ok((vec![digest], false))
        }
    }
}

fn check_group_id(id: &str) -> Result<(), CloudError> {
    let valid = (1..=40).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !id.contains("--")
        && !id.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(value(format!(
            "Replication group id {id:?} must be 1 to 40 letters, digits or hyphens, start with a letter, and contain no two consecutive hyphens nor end with one."
        )))
    }
}

fn check_node_type(node_type: &str) -> Result<(), CloudError> {
    let well_formed = node_type
        .strip_prefix("cache.")
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(family, size)| {
            !family.is_empty()
                && !size.is_empty()
                && node_type
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.')
        });
    if well_formed {
        Ok(())
    } else {
        Err(value(format!("Invalid CacheNodeType: {node_type}")))
    }
}

impl SimGlobal {
    fn settled_status(&self) -> GlobalReplicationGroupStatus {
        if self.members.iter().any(|m| !m.is_primary) {
            GlobalReplicationGroupStatus::Available
        } else {
            GlobalReplicationGroupStatus::PrimaryOnly
        }
    }

    fn primary_region(&self) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.is_primary)
            .map(|m| m.region.as_str())
    }
}

impl CacheWorld {
    fn key(region: &str, id: &str) -> (String, String) {
        (region.to_string(), id.to_string())
    }

    /// The Global Datastore `(id, member)` the group belongs to.
    fn membership(&self, region: &str, id: &str) -> Option<(&SimGlobal, &SimMember)> {
        let g = self
            .globals
            .get(self.global_of.get(&Self::key(region, id))?)?;
        g.members
            .iter()
            .find(|m| m.region == region && m.group_id == id)
            .map(|m| (&**g, m))
    }

    fn add_global(&mut self, global: SimGlobal) {
        for m in &global.members {
            self.global_of
                .insert(Self::key(&m.region, &m.group_id), global.id.clone());
        }
        self.globals.insert(global.id.clone(), Box::new(global));
    }

    fn add_member(&mut self, global: &str, member: SimMember) {
        let Some(g) = self.globals.get_mut(global) else {
            return;
        };
        self.global_of.insert(
            Self::key(&member.region, &member.group_id),
            global.to_string(),
        );
        g.members.push(member);
    }

    fn remove_member(&mut self, global: &str, region: &str, id: &str) {
        let Some(g) = self.globals.get_mut(global) else {
            return;
        };
        g.members
            .retain(|m| !(m.region == region && m.group_id == id));
        g.status = g.settled_status();
        let key = Self::key(region, id);
        if self.global_of.get(&key).is_some_and(|of| of == global) {
            self.global_of.remove(&key);
        }
    }

    fn remove_global(&mut self, global: &str) {
        let Some(g) = self.globals.remove(global) else {
            return;
        };
        for m in &g.members {
            let key = Self::key(&m.region, &m.group_id);
            if self.global_of.get(&key).is_some_and(|of| of == global) {
                self.global_of.remove(&key);
            }
        }
    }

    /// Rebuilds what is derived from the saved state (after loading it).
    pub(crate) fn reindex(&mut self) {
        self.global_of.clear();
        for g in self.globals.values() {
            for m in &g.members {
                self.global_of
                    .insert(Self::key(&m.region, &m.group_id), g.id.clone());
            }
        }
    }

    /// The replication group a node (cache cluster) of `region` belongs
    /// to: a node's id is its group's, its shard's and its own number
    /// (see [`CacheWorld::group_view`]), so no group is scanned.
    fn group_of_node(&self, region: &str, cache_cluster_id: &str) -> Option<&SimGroup> {
        let (rest, node) = cache_cluster_id.rsplit_once('-')?;
        let (id, shard) = rest.rsplit_once('-')?;
        let g = self.groups.get(&Self::key(region, id))?;
        let shard_n: u16 = shard.parse().ok()?;
        let node_n: u16 = node.parse().ok()?;
        let named = (1..=g.shards).contains(&shard_n)
            && (1..=u16::from(g.replicas) + 1).contains(&node_n)
            && format!("{id}-{shard_n:04}-{node_n:03}") == cache_cluster_id;
        named.then_some(g)
    }

    pub(crate) fn global_view(&self, g: &SimGlobal) -> GlobalReplicationGroup {
        GlobalReplicationGroup {
            id: g.id.clone(),
            arn: global_arn(&g.id),
            description: Some(g.description.clone()),
            status: g.status.clone(),
            cache_node_type: g.node_type.clone(),
            engine: g.engine.clone(),
            engine_version: g.engine_version.clone(),
            cluster_enabled: g.cluster_enabled,
            num_node_groups: g.shards,
            auth_token_enabled: g.auth,
            transit_encryption_enabled: g.transit,
            at_rest_encryption_enabled: g.at_rest,
            members: g
                .members
                .iter()
                .map(|m| GlobalReplicationGroupMember {
                    replication_group_id: m.group_id.clone(),
                    region: m.region.clone(),
                    is_primary: m.is_primary,
                    status: m.status.clone(),
                    automatic_failover: self
                        .groups
                        .get(&Self::key(&m.region, &m.group_id))
                        .map_or(AutomaticFailoverStatus::Disabled, |group| {
                            group.automatic_failover.clone()
                        }),
                })
                .collect(),
        }
    }

    pub(crate) fn global_views(&self) -> Vec<GlobalReplicationGroup> {
        self.globals.values().map(|g| self.global_view(g)).collect()
    }

    pub(crate) fn group_view(&self, region: &str, id: &str) -> Option<ReplicationGroup> {
        let g = self.groups.get(&Self::key(region, id))?;
        let endpoint = |kind: &str| Endpoint {
            address: format!("{kind}.{id}.sim.{region}.cache.amazonaws.com"),
            port: 6379,
        };
        let node_groups = (1..=g.shards)
            .map(|shard| NodeGroup {
                id: format!("{shard:04}"),
                status: g.status.clone(),
                primary_endpoint: (!g.cluster_enabled).then(|| endpoint("master")),
                reader_endpoint: (!g.cluster_enabled).then(|| endpoint("replica")),
                members: (0..=g.replicas)
                    .map(|node| NodeGroupMember {
                        cache_cluster_id: format!("{id}-{shard:04}-{:03}", node + 1),
                        current_role: (!g.cluster_enabled).then_some(if node == 0 {
                            NodeRole::Primary
                        } else {
                            NodeRole::Replica
                        }),
                    })
                    .collect(),
            })
            .collect();
        Some(ReplicationGroup {
            id: g.id.clone(),
            arn: group_arn(region, id),
            description: g.description.clone(),
            status: g.status.clone(),
            engine: g.engine.clone(),
            cache_node_type: g.node_type.clone(),
            cluster_enabled: g.cluster_enabled,
            node_groups,
            configuration_endpoint: g.cluster_enabled.then(|| endpoint("clustercfg")),
            automatic_failover: g.automatic_failover.clone(),
            multi_az: g.multi_az,
            auth_token_enabled: g.auth,
            transit_encryption_enabled: g.transit,
            at_rest_encryption_enabled: g.at_rest,
            global_replication_group: self.membership(region, id).map(|(global, member)| {
                GlobalReplicationGroupInfo {
                    global_replication_group_id: global.id.clone(),
                    is_primary: member.is_primary,
                }
            }),
            created_at: Some(g.created_at),
        })
    }
}

impl World {
    pub(super) fn apply_cache(&mut self, at: Timestamp, event: Event) {
        let c = &mut self.elasticache;
        match event {
            Event::GroupAvailable { region, id } => {
                if let Some(g) = c.groups.get_mut(&CacheWorld::key(&region, &id)) {
                    g.status = ReplicationGroupStatus::Available;
                }
            }
            Event::MemberAssociated { global, region, id } => {
                if let Some(g) = c.groups.get_mut(&CacheWorld::key(&region, &id)) {
                    g.status = ReplicationGroupStatus::Available;
                }
                if let Some(g) = c.globals.get_mut(&global) {
                    for m in &mut g.members {
                        if m.region == region && m.group_id == id {
                            m.status = GlobalMemberStatus::Associated;
                        }
                    }
                    if g.status != GlobalReplicationGroupStatus::Deleting
                        && g.status != GlobalReplicationGroupStatus::Creating
                    {
                        g.status = g.settled_status();
                    }
                }
            }
            Event::GlobalAvailable { id } => {
                if let Some(g) = c.globals.get_mut(&id) {
                    g.status = g.settled_status();
                }
            }
            Event::ReplicasChanged { region, id, count } => {
                if let Some(g) = c.groups.get_mut(&CacheWorld::key(&region, &id)) {
                    g.replicas = count;
                    g.status = ReplicationGroupStatus::Available;
                }
            }
            Event::GroupModified { region, id } => {
                if let Some(g) = c.groups.get_mut(&CacheWorld::key(&region, &id)) {
                    g.status = ReplicationGroupStatus::Available;
                    g.automatic_failover = match &g.automatic_failover {
                        AutomaticFailoverStatus::Enabling => AutomaticFailoverStatus::Enabled,
                        AutomaticFailoverStatus::Disabling => AutomaticFailoverStatus::Disabled,
                        settled => settled.clone(),
                    };
                }
            }
            Event::GroupDeleted { region, id } => {
                c.groups.remove(&CacheWorld::key(&region, &id));
            }
            Event::MemberDisassociated { global, region, id } => {
                c.remove_member(&global, &region, &id);
                if let Some(g) = c.groups.get_mut(&CacheWorld::key(&region, &id)) {
                    g.status = ReplicationGroupStatus::Available;
                }
            }
            Event::GlobalDeleted { id } => {
                // The primary stays, as a standalone replication group.
                c.remove_global(&id);
            }
            Event::PrimaryMoved {
                global,
                to_region,
                record,
            } => {
                if let Some(g) = c.globals.get_mut(&global) {
                    for m in &mut g.members {
                        m.is_primary = m.region == to_region;
                    }
                    g.status = g.settled_status();
                }
                if let Some(r) = c.failovers.get_mut(record) {
                    r.completed_at = Some(at);
                }
            }
        }
    }

    fn cache_lag_of(&self, region: &str) -> Duration {
        self.elasticache
            .lag
            .get(region)
            .copied()
            .unwrap_or(self.durations.cache_replication_lag)
    }

    fn create_replication_group(
        &mut self,
        region: &str,
        request: &CreateReplicationGroupRequest,
        now: Timestamp,
    ) -> Result<ReplicationGroup, CloudError> {
        let id = &request.replication_group_id;
        check_group_id(id)?;
        if self
            .elasticache
            .groups
            .contains_key(&CacheWorld::key(region, id))
        {
            return Err(CloudError::already_exists(
                "ReplicationGroupAlreadyExists",
                format!("Replication group {id} already exists."),
            ));
        }
        let replicas = request.replicas_per_node_group;
        if replicas > 5 {
            return Err(value("ReplicasPerNodeGroup must be between 0 and 5."));
        }
        let automatic_failover = request.automatic_failover_enabled == Some(true);
        if automatic_failover && replicas == 0 {
            return Err(combination(
                "Automatic failover needs at least one replica in each node group.",
            ));
        }
        if request.multi_az_enabled == Some(true) && !automatic_failover {
            return Err(combination("Multi-AZ requires automatic failover."));
        }
        if request
            .cache_subnet_group_name
            .as_deref()
            .is_some_and(|name| !self.account.has_subnet_group(region, name))
        {
            return Err(CloudError::refused(
                "CacheSubnetGroupNotFoundFault",
                format!(
                    "CacheSubnetGroup {} does not exist.",
                    request
                        .cache_subnet_group_name
                        .as_deref()
                        .unwrap_or_default()
                ),
            ));
        }
        if let Some(id) = self
            .account
            .missing_security_group(region, &request.security_group_ids)
        {
            return Err(value(format!("Invalid security group, groupId= {id}")));
        }
        if let Some(token) = &request.auth_token {
            let transit = match &request.global_replication_group_id {
                Some(gid) => self.elasticache.globals.get(gid).is_some_and(|g| g.transit),
                None => request.transit_encryption_enabled == Some(true),
            };
            if !transit {
                return Err(combination(
                    "AUTH token can be specified only when TransitEncryptionEnabled is true.",
                ));
            }
            check_auth_token(token.expose())
                .map_err(|why| value(format!("Invalid AuthToken: {why}.")))?;
        }
        let (group, secondary_of) = match &request.global_replication_group_id {
            Some(gid) => {
                let group = self.secondary_shape(region, gid, request, now)?;
                (group, Some(gid.clone()))
            }
            None => (self.primary_shape(request, now)?, None),
        };
        self.elasticache
            .groups
            .insert(CacheWorld::key(region, id), Box::new(group));
        match secondary_of {
            Some(gid) => {
                self.elasticache.add_member(
                    &gid,
                    SimMember {
                        region: region.to_string(),
                        group_id: id.clone(),
                        is_primary: false,
                        status: GlobalMemberStatus::Associating,
                    },
                );
                let after = self.duration(
                    region,
                    Op::CreateReplicationGroup,
                    self.durations.cache_secondary_create,
                );
                self.schedule(
                    now,
                    after,
                    Event::MemberAssociated {
                        global: gid,
                        region: region.to_string(),
                        id: id.clone(),
                    },
                );
            }
            None => {
                let after = self.duration(
                    region,
                    Op::CreateReplicationGroup,
                    self.durations.cache_group_create,
                );
                self.schedule(
                    now,
                    after,
                    Event::GroupAvailable {
                        region: region.to_string(),
                        id: id.clone(),
                    },
                );
            }
        }
        Ok(self
            .elasticache
            .group_view(region, id)
            .expect("just inserted"))
    }

    fn primary_shape(
        &self,
        request: &CreateReplicationGroupRequest,
        now: Timestamp,
    ) -> Result<SimGroup, CloudError> {
        let engine = request.engine.clone().unwrap_or_else(|| "redis".into());
        let versions =
            engine_versions(&engine).ok_or_else(|| value(format!("Invalid engine: {engine}")))?;
        let engine_version = match &request.engine_version {
            None => versions[0].to_string(),
            Some(v) if versions.contains(&v.as_str()) => v.clone(),
            Some(v) => {
                return Err(combination(format!("Cannot find version {v} for {engine}")));
            }
        };
        let node_type = request
            .cache_node_type
            .clone()
            .ok_or_else(|| value("CacheNodeType is required."))?;
        check_node_type(&node_type)?;
        let shards = request.num_node_groups.unwrap_or(1);
        if shards == 0 || shards > 500 {
            return Err(value("NumNodeGroups must be between 1 and 500."));
        }
        let cluster_enabled = request.cluster_mode_enabled.unwrap_or(false);
        if shards > 1 && !cluster_enabled {
            return Err(combination(
                "More than one node group needs cluster mode enabled.",
            ));
        }
        Ok(SimGroup {
            id: request.replication_group_id.clone(),
            status: ReplicationGroupStatus::Creating,
            description: request.description.clone(),
            engine,
            engine_version,
            node_type,
            shards,
            replicas: request.replicas_per_node_group,
            cluster_enabled,
            auth: request.auth_token.is_some(),
            tokens: request.auth_token.iter().map(token_digest).collect(),
            token_optional: false,
            security_groups: sorted(&request.security_group_ids),
            transit: request.transit_encryption_enabled == Some(true),
            at_rest: request.at_rest_encryption_enabled == Some(true),
            automatic_failover: if request.automatic_failover_enabled == Some(true) {
                AutomaticFailoverStatus::Enabled
            } else {
                AutomaticFailoverStatus::Disabled
            },
            multi_az: request.multi_az_enabled == Some(true),
            tags: request.tags.clone(),
            created_at: now,
        })
    }

    /// A secondary inherits the Global Datastore's engine, version, node
    /// type and shards; naming anything else, or other encryption or AUTH
    /// settings, is refused.
    fn secondary_shape(
        &self,
        region: &str,
        gid: &str,
        request: &CreateReplicationGroupRequest,
        now: Timestamp,
    ) -> Result<SimGroup, CloudError> {
        let g = self
            .elasticache
            .globals
            .get(gid)
            .ok_or_else(|| global_not_found(gid))?;
        if !matches!(
            g.status,
            GlobalReplicationGroupStatus::Available | GlobalReplicationGroupStatus::PrimaryOnly
        ) {
            return Err(busy_global(gid, g.status.as_str()));
        }
        if g.members.iter().any(|m| m.region == region) {
            return Err(value(format!(
                "Global datastore {gid} already has a member in {region}."
            )));
        }
        if g.members.len() >= 3 {
            return Err(combination(format!(
                "Global datastore {gid} already has the maximum of two secondary clusters."
            )));
        }
        // AWS's guide: ElastiCache infers these from the primary; "do not
        // pass in values for these parameters".
        let inherited = [
            ("Engine", request.engine.is_some()),
            ("EngineVersion", request.engine_version.is_some()),
            ("CacheNodeType", request.cache_node_type.is_some()),
            ("NumNodeGroups", request.num_node_groups.is_some()),
            (
                "CacheParameterGroupName",
                request.cache_parameter_group_name.is_some(),
            ),
            (
                "AutomaticFailoverEnabled",
                request.automatic_failover_enabled.is_some(),
            ),
            ("MultiAZEnabled", request.multi_az_enabled.is_some()),
            (
                "TransitEncryptionEnabled",
                request.transit_encryption_enabled.is_some(),
            ),
            (
                "AtRestEncryptionEnabled",
                request.at_rest_encryption_enabled.is_some(),
            ),
        ];
        if let Some((name, _)) = inherited.iter().find(|(_, passed)| *passed) {
            return Err(combination(format!(
                "{name} cannot be specified for a secondary of Global datastore {gid}; it is inferred from the primary."
            )));
        }
        let primary = g.members.iter().find(|m| m.is_primary).and_then(|m| {
            self.elasticache
                .groups
                .get(&CacheWorld::key(&m.region, &m.group_id))
        });
        if let Some(shards) = request.num_node_groups
            && shards != g.shards
        {
            return Err(combination(format!(
                "NumNodeGroups {shards} differs from the Global datastore's {}.",
                g.shards
            )));
        }
        if let Some(cluster) = request.cluster_mode_enabled
            && cluster != g.cluster_enabled
        {
            return Err(combination(
                "Cluster mode differs from the Global datastore's.",
            ));
        }
        if request.auth_token.is_some() != g.auth {
            return Err(combination(format!(
                "AUTH must match Global datastore {gid} (AuthTokenEnabled is {}).",
                g.auth
            )));
        }
        Ok(SimGroup {
            id: request.replication_group_id.clone(),
            status: ReplicationGroupStatus::Creating,
            description: request.description.clone(),
            engine: g.engine.clone(),
            engine_version: g.engine_version.clone(),
            node_type: g.node_type.clone(),
            shards: g.shards,
            replicas: request.replicas_per_node_group,
            cluster_enabled: g.cluster_enabled,
            auth: g.auth,
            tokens: request.auth_token.iter().map(token_digest).collect(),
            token_optional: false,
            security_groups: sorted(&request.security_group_ids),
            transit: g.transit,
            at_rest: g.at_rest,
            automatic_failover: primary.map_or(AutomaticFailoverStatus::Disabled, |p| {
                p.automatic_failover.clone()
            }),
            multi_az: primary.is_some_and(|p| p.multi_az),
            tags: request.tags.clone(),
            created_at: now,
        })
    }

    fn create_global_replication_group(
        &mut self,
        region: &str,
        request: &CreateGlobalReplicationGroupRequest,
        now: Timestamp,
    ) -> Result<GlobalReplicationGroup, CloudError> {
        let suffix = &request.suffix;
        if let Some(existing) = self
            .elasticache
            .globals
            .values()
            .find(|g| &g.suffix == suffix)
        {
            return Err(CloudError::already_exists(
                "GlobalReplicationGroupAlreadyExistsFault",
                format!(
                    "Global datastore {} already uses the suffix {suffix}.",
                    existing.id
                ),
            ));
        }
        let primary_id = &request.primary_replication_group_id;
        let primary = self
            .elasticache
            .groups
            .get(&CacheWorld::key(region, primary_id))
            .ok_or_else(|| group_not_found(primary_id))?;
        if primary.status != ReplicationGroupStatus::Available {
            return Err(busy_group(primary_id, primary.status.as_str()));
        }
        if let Some((other, _)) = self.elasticache.membership(region, primary_id) {
            return Err(value(format!(
                "Replication group {primary_id} is already a member of Global datastore {}.",
                other.id
            )));
        }
        check_global_node_type(&primary.node_type).map_err(value)?;
        let version = primary.engine_version.as_str();
        if primary.engine == "redis" && version_key(version) < version_key("5.0.6") {
            return Err(combination(
                "Global datastores need Redis OSS 5.0.6 or later.",
            ));
        }
        let id = format!("{}-{suffix}", global_datastore_prefix(region));
        let global = SimGlobal {
            id: id.clone(),
            suffix: suffix.clone(),
            status: GlobalReplicationGroupStatus::Creating,
            description: request.description.clone(),
            engine: primary.engine.clone(),
            engine_version: version.to_string(),
            node_type: primary.node_type.clone(),
            shards: primary.shards,
            cluster_enabled: primary.cluster_enabled,
            auth: primary.auth,
            transit: primary.transit,
            at_rest: primary.at_rest,
            tags: request.tags.clone(),
            members: vec![SimMember {
                region: region.to_string(),
                group_id: primary_id.clone(),
                is_primary: true,
                status: GlobalMemberStatus::Associated,
            }],
        };
        self.elasticache.add_global(global);
        let after = self.duration(
            region,
            Op::CreateGlobalReplicationGroup,
            self.durations.cache_global_create,
        );
        self.schedule(now, after, Event::GlobalAvailable { id: id.clone() });
        let g = &self.elasticache.globals[&id];
        Ok(self.elasticache.global_view(g))
    }

    fn delete_global_replication_group(
        &mut self,
        region: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<(), CloudError> {
        let g = self
            .elasticache
            .globals
            .get_mut(id)
            .ok_or_else(|| global_not_found(id))?;
        if g.status == GlobalReplicationGroupStatus::Deleting {
            return Ok(());
        }
        if g.members.iter().any(|m| !m.is_primary) {
            return Err(CloudError::invalid_state(
                "InvalidGlobalReplicationGroupState",
                format!(
                    "Global datastore {id} still has secondary clusters; disassociate them first."
                ),
            ));
        }
        if !matches!(
            g.status,
            GlobalReplicationGroupStatus::Available | GlobalReplicationGroupStatus::PrimaryOnly
        ) {
            return Err(busy_global(id, g.status.as_str()));
        }
        g.status = GlobalReplicationGroupStatus::Deleting;
        let after = self.duration(
            region,
            Op::DeleteGlobalReplicationGroup,
            self.durations.cache_global_delete,
        );
        self.schedule(now, after, Event::GlobalDeleted { id: id.to_string() });
        Ok(())
    }

    fn disassociate(
        &mut self,
        region: &str,
        gid: &str,
        group_id: &str,
        group_region: &str,
        now: Timestamp,
    ) -> Result<(), CloudError> {
        let g = self
            .elasticache
            .globals
            .get_mut(gid)
            .ok_or_else(|| global_not_found(gid))?;
        let Some(member) = g
            .members
            .iter_mut()
            .find(|m| m.region == group_region && m.group_id == group_id)
        else {
            return Err(group_not_found(group_id));
        };
        if member.is_primary {
            return Err(value(format!(
                "{group_id} is the primary of Global datastore {gid}; only a secondary can be disassociated."
            )));
        }
        if g.status != GlobalReplicationGroupStatus::Available
            || member.status != GlobalMemberStatus::Associated
        {
            let status = if g.status == GlobalReplicationGroupStatus::Available {
                member.status.as_str()
            } else {
                g.status.as_str()
            };
            return Err(busy_global(gid, status));
        }
        member.status = GlobalMemberStatus::Disassociating;
        g.status = GlobalReplicationGroupStatus::Modifying;
        let after = self.duration(
            region,
            Op::DisassociateGlobalReplicationGroup,
            self.durations.cache_disassociate,
        );
        self.schedule(
            now,
            after,
            Event::MemberDisassociated {
                global: gid.to_string(),
                region: group_region.to_string(),
                id: group_id.to_string(),
            },
        );
        Ok(())
    }

    fn failover_global(
        &mut self,
        region: &str,
        gid: &str,
        primary_region: &str,
        primary_group: &str,
        now: Timestamp,
    ) -> Result<(), CloudError> {
        let g = self
            .elasticache
            .globals
            .get(gid)
            .ok_or_else(|| global_not_found(gid))?;
        if g.status != GlobalReplicationGroupStatus::Available {
            return Err(busy_global(gid, g.status.as_str()));
        }
        let Some(target) = g
            .members
            .iter()
            .find(|m| m.region == primary_region && m.group_id == primary_group)
        else {
            return Err(value(format!(
                "{primary_group} in {primary_region} is not a member of Global datastore {gid}."
            )));
        };
        if target.is_primary {
            return Err(value(format!(
                "{primary_group} is already the primary of Global datastore {gid}."
            )));
        }
        if target.status != GlobalMemberStatus::Associated {
            return Err(busy_global(gid, target.status.as_str()));
        }
        if self.outages.contains_key(primary_region) {
            return Err(busy_group(primary_group, "unreachable"));
        }
        let from = g.primary_region().unwrap_or_default().to_string();
        let loss = self.cache_lag_of(primary_region);
        self.elasticache.failovers.push(CacheFailoverRecord {
            global_replication_group_id: gid.to_string(),
            from_region: from,
            to_region: primary_region.to_string(),
            requested_at: now,
            completed_at: None,
            data_loss_window: loss,
        });
        let record = self.elasticache.failovers.len() - 1;
        self.elasticache
            .globals
            .get_mut(gid)
            .expect("checked above")
            .status = GlobalReplicationGroupStatus::Modifying;
        let after = self.duration(
            region,
            Op::FailoverGlobalReplicationGroup,
            self.durations.cache_failover,
        );
        self.schedule(
            now,
            after,
            Event::PrimaryMoved {
                global: gid.to_string(),
                to_region: primary_region.to_string(),
                record,
            },
        );
        Ok(())
    }

    fn modify_replication_group(
        &mut self,
        region: &str,
        request: &ModifyReplicationGroupRequest,
        now: Timestamp,
    ) -> Result<ReplicationGroup, CloudError> {
        let id = &request.replication_group_id;
        let key = CacheWorld::key(region, id);
        let g = self
            .elasticache
            .groups
            .get(&key)
            .ok_or_else(|| group_not_found(id))?;
        if g.status != ReplicationGroupStatus::Available {
            return Err(busy_group(id, g.status.as_str()));
        }
        let failover = request
            .automatic_failover_enabled
            .unwrap_or(g.automatic_failover == AutomaticFailoverStatus::Enabled);
        let multi_az = request.multi_az_enabled.unwrap_or(g.multi_az);
        if failover && g.replicas == 0 {
            return Err(combination(
                "Automatic failover needs at least one replica in each node group.",
            ));
        }
        if multi_az && !failover {
            return Err(combination("Multi-AZ requires automatic failover."));
        }
        let tokens = match &request.auth_token {
            Some((token, strategy)) => Some(next_tokens(g, token, *strategy)?),
            None => None,
        };
        if let Some(groups) = &request.security_group_ids
            && let Some(id) = self.account.missing_security_group(region, groups)
        {
            return Err(value(format!("Invalid security group, groupId= {id}")));
        }
        let new_groups = request
            .security_group_ids
            .as_deref()
            .map(sorted)
            .filter(|groups| *groups != g.security_groups);
        let changes = failover != (g.automatic_failover == AutomaticFailoverStatus::Enabled)
            || multi_az != g.multi_az
            || tokens.is_some()
            || new_groups.is_some();
        if let Some(groups) = new_groups {
            self.elasticache
                .groups
                .get_mut(&key)
                .expect("checked above")
                .security_groups = groups;
        }
        if let Some((tokens, optional)) = tokens {
            let g = self
                .elasticache
                .groups
                .get_mut(&key)
                .expect("checked above");
            g.tokens = tokens;
            g.token_optional = optional;
            g.auth = true;
        }
        if changes {
            let g = self
                .elasticache
                .groups
                .get_mut(&key)
                .expect("checked above");
            g.automatic_failover = match (failover, &g.automatic_failover) {
                (true, AutomaticFailoverStatus::Enabled) => AutomaticFailoverStatus::Enabled,
                (true, _) => AutomaticFailoverStatus::Enabling,
                (false, AutomaticFailoverStatus::Disabled) => AutomaticFailoverStatus::Disabled,
                (false, _) => AutomaticFailoverStatus::Disabling,
            };
            g.multi_az = multi_az;
            g.status = ReplicationGroupStatus::Modifying;
            let after = self.duration(
                region,
                Op::ModifyReplicationGroup,
                self.durations.cache_modify,
            );
            self.schedule(
                now,
                after,
                Event::GroupModified {
                    region: region.to_string(),
                    id: id.clone(),
                },
            );
        }
        Ok(self.elasticache.group_view(region, id).expect("exists"))
    }

    fn change_replicas(
        &mut self,
        region: &str,
        op: Op,
        id: &str,
        count: u8,
        now: Timestamp,
    ) -> Result<ReplicationGroup, CloudError> {
        let key = CacheWorld::key(region, id);
        let g = self
            .elasticache
            .groups
            .get(&key)
            .ok_or_else(|| group_not_found(id))?;
        if g.status != ReplicationGroupStatus::Available {
            return Err(busy_group(id, g.status.as_str()));
        }
        if count > 5 {
            return Err(value("NewReplicaCount must be between 0 and 5."));
        }
        let increase = op == Op::IncreaseReplicaCount;
        if increase && count <= g.replicas {
            return Err(value(format!(
                "NewReplicaCount {count} must be greater than the current {}.",
                g.replicas
            )));
        }
        if !increase && count >= g.replicas {
            return Err(value(format!(
                "NewReplicaCount {count} must be less than the current {}.",
                g.replicas
            )));
        }
        if count == 0 && g.automatic_failover != AutomaticFailoverStatus::Disabled {
            return Err(combination(
                "Cannot remove the last replica while automatic failover is enabled.",
            ));
        }
        self.elasticache
            .groups
            .get_mut(&key)
            .expect("checked above")
            .status = ReplicationGroupStatus::Modifying;
        let after = self.duration(region, op, self.durations.cache_replica_change);
        self.schedule(
            now,
            after,
            Event::ReplicasChanged {
                region: region.to_string(),
                id: id.to_string(),
                count,
            },
        );
        Ok(self.elasticache.group_view(region, id).expect("exists"))
    }

    fn delete_replication_group(
        &mut self,
        region: &str,
        request: &DeleteReplicationGroupRequest,
        now: Timestamp,
    ) -> Result<(), CloudError> {
        let id = &request.replication_group_id;
        let key = CacheWorld::key(region, id);
        let g = self
            .elasticache
            .groups
            .get(&key)
            .ok_or_else(|| group_not_found(id))?;
        if g.status == ReplicationGroupStatus::Deleting {
            return Ok(());
        }
        if let Some((global, _)) = self.elasticache.membership(region, id) {
            return Err(CloudError::invalid_state(
                "InvalidReplicationGroupState",
                format!(
                    "Replication group {id} is a member of Global datastore {}; remove it from the Global datastore first.",
                    global.id
                ),
            ));
        }
        if g.status != ReplicationGroupStatus::Available {
            return Err(busy_group(id, g.status.as_str()));
        }
        if let Some(snapshot) = &request.final_snapshot_id {
            let snapshot_key = CacheWorld::key(region, snapshot);
            if self.elasticache.snapshots.contains(&snapshot_key) {
                return Err(CloudError::already_exists(
                    "SnapshotAlreadyExistsFault",
                    format!("Snapshot {snapshot} already exists."),
                ));
            }
            self.elasticache.snapshots.insert(snapshot_key);
        }
        self.elasticache
            .groups
            .get_mut(&key)
            .expect("checked above")
            .status = ReplicationGroupStatus::Deleting;
        let after = self.duration(
            region,
            Op::DeleteReplicationGroup,
            self.durations.cache_group_delete,
        );
        self.schedule(
            now,
            after,
            Event::GroupDeleted {
                region: region.to_string(),
                id: id.clone(),
            },
        );
        Ok(())
    }

    /// The tags of a replication group or Global Datastore, by ARN.
    fn cache_tags_mut(&mut self, region: &str, arn: &str) -> Result<&mut Tags, CloudError> {
        let invalid = || {
            CloudError::refused(
                "InvalidARN",
                format!("{arn} is not an ElastiCache resource in {region}"),
            )
        };
        if let Some((_, id)) = arn.rsplit_once(":replicationgroup:") {
            if arn_region(arn) != Some(region) {
                return Err(invalid());
            }
            return self
                .elasticache
                .groups
                .get_mut(&CacheWorld::key(region, id))
                .map(|g| &mut g.tags)
                .ok_or_else(|| group_not_found(id));
        }
        if let Some((_, id)) = arn.rsplit_once(":globalreplicationgroup:") {
            return self
                .elasticache
                .globals
                .get_mut(id)
                .map(|g| &mut g.tags)
                .ok_or_else(|| global_not_found(id));
        }
        Err(invalid())
    }

    fn cache_replication_lag(
        &self,
        region: &str,
        id: &str,
    ) -> Result<Option<Duration>, CloudError> {
        let c = &self.elasticache;
        let group = c
            .groups
            .get(&CacheWorld::key(region, id))
            .ok_or_else(|| group_not_found(id))?;
        let Some((global, member)) = c.membership(region, id) else {
            return Ok(None);
        };
        if member.is_primary
            || member.status != GlobalMemberStatus::Associated
            || group.status == ReplicationGroupStatus::Creating
        {
            return Ok(None);
        }
        // With the primary's region unreachable nothing replicates and
        // CloudWatch has no data points to report.
        if global
            .primary_region()
            .is_some_and(|r| self.outages.contains_key(r))
        {
            return Ok(None);
        }
        Ok(Some(self.cache_lag_of(region)))
    }
}

/// The ElastiCache API of one region of a [`SimCloud`].
pub(crate) struct SimElastiCachePort {
    cloud: SimCloud,
    region: String,
}

impl SimElastiCachePort {
    pub(crate) fn new(cloud: SimCloud, region: &str) -> Self {
        Self {
            cloud,
            region: region.to_string(),
        }
    }
}

#[async_trait]
impl ElastiCachePort for SimElastiCachePort {
    fn region(&self) -> &str {
        &self.region
    }

    async fn describe_global_replication_groups(
        &self,
        id: Option<&str>,
    ) -> Result<Vec<GlobalReplicationGroup>, CloudError> {
        // Every regional endpoint answers for every Global Datastore of the
        // account (a region about to join must see it), as the simulated
        // Aurora does for global clusters.
        if let Some(id) = id {
            return self
                .cloud
                .call(&self.region, Op::DescribeGlobalReplicationGroups, |w, _| {
                    Ok(w.elasticache
                        .globals
                        .get(id)
                        .map(|g| w.elasticache.global_view(g))
                        .into_iter()
                        .collect())
                });
        }
        // Page after page, as AWS lists them.
        self.cloud.call_pages(
            &self.region,
            Op::DescribeGlobalReplicationGroups,
            |g| &g.id,
            |w, after| {
                w.elasticache
                    .globals
                    .iter()
                    .filter(|(id, _)| after.is_none_or(|after| id.as_str() > after))
                    .take(DESCRIBE_PAGE)
                    .map(|(_, g)| w.elasticache.global_view(g))
                    .collect()
            },
        )
    }

    async fn create_global_replication_group(
        &self,
        request: &CreateGlobalReplicationGroupRequest,
    ) -> Result<GlobalReplicationGroup, CloudError> {
        let region = self.region.as_str();
        self.cloud
            .call(region, Op::CreateGlobalReplicationGroup, |w, now| {
                w.create_global_replication_group(region, request, now)
            })
    }

    async fn delete_global_replication_group(&self, id: &str) -> Result<(), CloudError> {
        let region = self.region.as_str();
        self.cloud
            .call(region, Op::DeleteGlobalReplicationGroup, |w, now| {
                w.delete_global_replication_group(region, id, now)
            })
    }

    async fn disassociate_global_replication_group(
        &self,
        global_replication_group_id: &str,
        replication_group_id: &str,
        replication_group_region: &str,
    ) -> Result<(), CloudError> {
        let region = self.region.as_str();
        self.cloud
            .call(region, Op::DisassociateGlobalReplicationGroup, |w, now| {
                w.disassociate(
                    region,
                    global_replication_group_id,
                    replication_group_id,
                    replication_group_region,
                    now,
                )
            })
    }

    async fn failover_global_replication_group(
        &self,
        global_replication_group_id: &str,
        primary_region: &str,
        primary_replication_group_id: &str,
    ) -> Result<(), CloudError> {
        let region = self.region.as_str();
        self.cloud
            .call(region, Op::FailoverGlobalReplicationGroup, |w, now| {
                w.failover_global(
                    region,
                    global_replication_group_id,
                    primary_region,
                    primary_replication_group_id,
                    now,
                )
            })
    }

    async fn node_security_groups(
        &self,
        cache_cluster_id: &str,
    ) -> Result<Vec<String>, CloudError> {
        let region = self.region.as_str();
        self.cloud.call(region, Op::DescribeCacheClusters, |w, _| {
            w.elasticache
                .group_of_node(region, cache_cluster_id)
                .map(|g| g.security_groups.clone())
                .ok_or_else(|| {
                    CloudError::not_found(
                        "CacheClusterNotFound",
                        format!("CacheCluster {cache_cluster_id} not found."),
                    )
                })
        })
    }

    async fn cache_subnet_group_exists(&self, name: &str) -> Result<bool, CloudError> {
        let region = self.region.as_str();
        self.cloud
            .call(region, Op::DescribeCacheSubnetGroups, |w, _| {
                Ok(w.account.has_subnet_group(region, name))
            })
    }

    async fn describe_replication_group(
        &self,
        id: &str,
    ) -> Result<Option<ReplicationGroup>, CloudError> {
        let region = self.region.as_str();
        self.cloud
            .call(region, Op::DescribeReplicationGroups, |w, _| {
                Ok(w.elasticache.group_view(region, id))
            })
    }

    async fn describe_replication_groups(&self) -> Result<Vec<ReplicationGroup>, CloudError> {
        let region = self.region.as_str();
        self.cloud.call_pages(
            region,
            Op::DescribeReplicationGroups,
            |g| &g.id,
            |w, after| {
                page_of(&w.elasticache.groups, region, after, |id| {
                    w.elasticache.group_view(region, id)
                })
            },
        )
    }

    async fn create_replication_group(
        &self,
        request: &CreateReplicationGroupRequest,
    ) -> Result<ReplicationGroup, CloudError> {
        let region = self.region.as_str();
        self.cloud
            .call(region, Op::CreateReplicationGroup, |w, now| {
                w.create_replication_group(region, request, now)
            })
    }

    async fn modify_replication_group(
        &self,
        request: &ModifyReplicationGroupRequest,
    ) -> Result<ReplicationGroup, CloudError> {
        let region = self.region.as_str();
        self.cloud
            .call(region, Op::ModifyReplicationGroup, |w, now| {
                w.modify_replication_group(region, request, now)
            })
    }

    async fn delete_replication_group(
        &self,
        request: &DeleteReplicationGroupRequest,
    ) -> Result<(), CloudError> {
        let region = self.region.as_str();
        self.cloud
            .call(region, Op::DeleteReplicationGroup, |w, now| {
                w.delete_replication_group(region, request, now)
            })
    }

    async fn increase_replica_count(
        &self,
        replication_group_id: &str,
        new_replica_count: u8,
    ) -> Result<ReplicationGroup, CloudError> {
        let region = self.region.as_str();
        self.cloud.call(region, Op::IncreaseReplicaCount, |w, now| {
            w.change_replicas(
                region,
                Op::IncreaseReplicaCount,
                replication_group_id,
                new_replica_count,
                now,
            )
        })
    }

    async fn decrease_replica_count(
        &self,
        replication_group_id: &str,
        new_replica_count: u8,
    ) -> Result<ReplicationGroup, CloudError> {
        let region = self.region.as_str();
        self.cloud.call(region, Op::DecreaseReplicaCount, |w, now| {
            w.change_replicas(
                region,
                Op::DecreaseReplicaCount,
                replication_group_id,
                new_replica_count,
                now,
            )
        })
    }

    async fn list_tags(&self, resource_arn: &str) -> Result<Tags, CloudError> {
        let region = self.region.as_str();
        self.cloud.call(region, Op::ListTagsForResource, |w, _| {
            w.cache_tags_mut(region, resource_arn).map(|t| t.clone())
        })
    }

    async fn add_tags(&self, resource_arn: &str, tags: &Tags) -> Result<(), CloudError> {
        let region = self.region.as_str();
        self.cloud.call(region, Op::CacheAddTagsToResource, |w, _| {
            let target = w.cache_tags_mut(region, resource_arn)?;
            target.extend(tags.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            Ok(())
        })
    }

    async fn replication_lag(
        &self,
        replication_group_id: &str,
        _now: Timestamp,
    ) -> Result<Option<Duration>, CloudError> {
        // The simulated metric is always current; `now` only bounds the
        // query window of the real CloudWatch call.
        let region = self.region.as_str();
        self.cloud.call(region, Op::GetMetricData, |w, _| {
            w.cache_replication_lag(region, replication_group_id)
        })
    }

    async fn replication_lags(
        &self,
        groups: &[ReplicationGroup],
        _now: Timestamp,
    ) -> Result<BTreeMap<String, Option<Duration>>, CloudError> {
        let region = self.region.as_str();
        let mut lags = BTreeMap::new();
        // One call per batch of nodes, as CloudWatch answers them; a group
        // with no data point (gone, the primary, replication stopped) is
        // `None`.
        let mut batch: Vec<&ReplicationGroup> = Vec::new();
        let mut nodes = 0;
        let mut read = |batch: &mut Vec<&ReplicationGroup>| -> Result<(), CloudError> {
            let answered = self.cloud.call(region, Op::GetMetricData, |w, _| {
                Ok(batch
                    .iter()
                    .map(|g| {
                        let lag = w.cache_replication_lag(region, &g.id).ok().flatten();
                        (g.id.clone(), lag)
                    })
                    .collect::<Vec<_>>())
            })?;
            lags.extend(answered);
            batch.clear();
            Ok(())
        };
        for group in groups {
            let count = group.nodes().len().max(1);
            if nodes + count > METRIC_QUERIES_PER_CALL && !batch.is_empty() {
                read(&mut batch)?;
                nodes = 0;
            }
            batch.push(group);
            nodes += count;
        }
        if !batch.is_empty() {
            read(&mut batch)?;
        }
        Ok(lags)
    }
}
