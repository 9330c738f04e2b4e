//! The ElastiCache port: what shopfleet needs from ElastiCache and
//! CloudWatch, in plain structs that map one-to-one onto the
//! aws-sdk-elasticache shapes.
//!
//! One handle serves one region, as one SDK client does. Global Datastore
//! calls go through a regional handle too (every regional endpoint serves
//! them), so a region that cannot be reached cannot act on the Global
//! Datastore either.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::jiff::Timestamp;

use crate::cloud::CloudError;
pub use crate::cloud::Tags;
pub use crate::cloud::aws::status::{
    AutomaticFailoverStatus, GlobalMemberStatus, GlobalReplicationGroupStatus, NodeRole,
    ReplicationGroupStatus,
};

/// A Redis AUTH token. It is a credential: its `Debug` says `<redacted>`,
/// it has no `Display`, and only [`AuthToken::expose`] (called by the code
/// that puts it on the wire) reveals it, so it cannot reach a status, an
/// Event or a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthToken(String);

impl AuthToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token itself, for the request that sends it to AWS.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthToken(<redacted>)")
    }
}

/// `Endpoint`: where clients connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub address: String,
    pub port: u16,
}

impl Endpoint {
    /// `host:port`, as Redis clients take it.
    pub fn to_host_port(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }
}

/// `DescribeGlobalReplicationGroups` (with `ShowMemberInfo`) →
/// `GlobalReplicationGroup`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalReplicationGroup {
    /// AWS's region prefix, a dash and the suffix given at creation, e.g.
    /// `ldgnf-acme` for a Global Datastore created in us-east-1.
    pub id: String,
    pub arn: String,
    pub description: Option<String>,
    /// `creating`, `primary-only`, `available`, `modifying`, `deleting`.
    pub status: GlobalReplicationGroupStatus,
    pub cache_node_type: String,
    /// `redis` or `valkey`.
    pub engine: String,
    pub engine_version: String,
    pub cluster_enabled: bool,
    /// The number of `GlobalNodeGroups`: shards, 1 when cluster mode is off.
    pub num_node_groups: u16,
    pub auth_token_enabled: bool,
    pub transit_encryption_enabled: bool,
    pub at_rest_encryption_enabled: bool,
    pub members: Vec<GlobalReplicationGroupMember>,
}

impl GlobalReplicationGroup {
    pub fn primary(&self) -> Option<&GlobalReplicationGroupMember> {
        self.members.iter().find(|m| m.is_primary)
    }

    /// The member in `region`, whatever its replication group is called.
    pub fn member_in(&self, region: &str) -> Option<&GlobalReplicationGroupMember> {
        self.members.iter().find(|m| m.region == region)
    }

    pub fn secondaries(&self) -> impl Iterator<Item = &GlobalReplicationGroupMember> {
        self.members.iter().filter(|m| !m.is_primary)
    }
}

/// `GlobalReplicationGroupMember`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalReplicationGroupMember {
    pub replication_group_id: String,
    pub region: String,
    /// `Role` is `primary` (or `PRIMARY`): parsed by the adapter.
    pub is_primary: bool,
    /// `associating`, `associated`, `disassociating`.
    pub status: GlobalMemberStatus,
    /// `enabled`, `disabled`, `enabling`, `disabling`.
    pub automatic_failover: AutomaticFailoverStatus,
}

/// `ReplicationGroup.GlobalReplicationGroupInfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalReplicationGroupInfo {
    pub global_replication_group_id: String,
    /// `GlobalReplicationGroupMemberRole` is `primary`: parsed by the adapter.
    pub is_primary: bool,
}

/// `DescribeReplicationGroups` → `ReplicationGroup`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationGroup {
    pub id: String,
    pub arn: String,
    pub description: String,
    /// `creating`, `available`, `modifying`, `deleting`, `create-failed`,
    /// `snapshotting`.
    pub status: ReplicationGroupStatus,
    /// `redis` or `valkey`.
    pub engine: String,
    pub cache_node_type: String,
    pub cluster_enabled: bool,
    /// One per shard; a single one when cluster mode is off.
    pub node_groups: Vec<NodeGroup>,
    /// Set when cluster mode is on: clients discover the shards through it.
    pub configuration_endpoint: Option<Endpoint>,
    /// `enabled`, `disabled`, `enabling`, `disabling`.
    pub automatic_failover: AutomaticFailoverStatus,
    /// `MultiAZ` is `enabled`.
    pub multi_az: bool,
    pub auth_token_enabled: bool,
    pub transit_encryption_enabled: bool,
    pub at_rest_encryption_enabled: bool,
    pub global_replication_group: Option<GlobalReplicationGroupInfo>,
    pub created_at: Option<Timestamp>,
}

impl ReplicationGroup {
    /// Replicas per shard; the smallest shard counts while a change is
    /// under way (AWS changes every shard to the same count).
    pub fn replicas_per_shard(&self) -> u8 {
        self.node_groups
            .iter()
            .map(|g| u8::try_from(g.members.len().saturating_sub(1)).unwrap_or(u8::MAX))
            .min()
            .unwrap_or(0)
    }

    /// Where this group takes writes (when it is the primary): the
    /// configuration endpoint with cluster mode on, else the primary endpoint.
    pub fn write_endpoint(&self) -> Option<&Endpoint> {
        self.configuration_endpoint.as_ref().or_else(|| {
            self.node_groups
                .first()
                .and_then(|g| g.primary_endpoint.as_ref())
        })
    }

    /// Where local reads go: the reader endpoint with cluster mode off, the
    /// configuration endpoint (clients read from replicas) with it on.
    pub fn read_endpoint(&self) -> Option<&Endpoint> {
        self.configuration_endpoint.as_ref().or_else(|| {
            self.node_groups
                .first()
                .and_then(|g| g.reader_endpoint.as_ref())
        })
    }

    pub fn automatic_failover_on(&self) -> bool {
        self.automatic_failover.is_on()
    }

    /// The nodes (cache clusters) of every shard, sorted: the sources of
    /// the group's per-node CloudWatch metrics.
    pub fn nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .node_groups
            .iter()
            .flat_map(|g| &g.members)
            .map(|m| m.cache_cluster_id.clone())
            .filter(|id| !id.is_empty())
            .collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }
}

/// `NodeGroup`: one shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeGroup {
    pub id: String,
    pub status: ReplicationGroupStatus,
    /// Cluster mode off only.
    pub primary_endpoint: Option<Endpoint>,
    /// Cluster mode off only.
    pub reader_endpoint: Option<Endpoint>,
    pub members: Vec<NodeGroupMember>,
}

/// `NodeGroupMember`: one node of a shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeGroupMember {
    pub cache_cluster_id: String,
    /// `primary` or `replica` (cluster mode off only).
    pub current_role: Option<NodeRole>,
}

/// `CreateReplicationGroup`, always with Redis AUTH or none, and tags.
///
/// A secondary of a Global Datastore inherits engine, version, node type
/// and shards from the primary: those are `None` for it, as AWS rejects a
/// secondary that asks for something else.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateReplicationGroupRequest {
    pub replication_group_id: String,
    pub description: String,
    /// Set for a secondary: the Global Datastore it joins.
    pub global_replication_group_id: Option<String>,
    pub engine: Option<String>,
    /// `None` takes AWS's default version of the engine.
    pub engine_version: Option<String>,
    pub cache_node_type: Option<String>,
    pub num_node_groups: Option<u16>,
    /// `ClusterMode` `enabled` / `disabled`.
    pub cluster_mode_enabled: Option<bool>,
    pub replicas_per_node_group: u8,
    /// `None` on a secondary, as for every setting below that it inherits
    /// from the primary: AWS's guide says not to pass them.
    pub automatic_failover_enabled: Option<bool>,
    pub multi_az_enabled: Option<bool>,
    pub transit_encryption_enabled: Option<bool>,
    pub at_rest_encryption_enabled: Option<bool>,
    /// Each member has its own AUTH token (the primary's value is not
    /// replicated to a secondary's endpoint).
    pub auth_token: Option<AuthToken>,
    pub tags: Tags,
    /// `CacheSubnetGroupName`: regional, sent by every member; `None` is
    /// the default VPC.
    pub cache_subnet_group_name: Option<String>,
    /// `SecurityGroupIds`: regional, sent by every member.
    pub security_group_ids: Vec<String>,
    /// `CacheParameterGroupName`: the primary's only; secondaries inherit.
    pub cache_parameter_group_name: Option<String>,
    /// `KmsKeyId`: regional, sent by every member with at-rest encryption.
    pub kms_key_id: Option<String>,
}

/// `ModifyReplicationGroup`, applied immediately. `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModifyReplicationGroupRequest {
    pub replication_group_id: String,
    pub automatic_failover_enabled: Option<bool>,
    pub multi_az_enabled: Option<bool>,
    /// A new AUTH token and how it takes effect (needs encryption in
    /// transit, and Redis OSS 5.0.6 or later).
    pub auth_token: Option<(AuthToken, AuthTokenUpdateStrategy)>,
    /// Replaces the VPC security groups of every node.
    pub security_group_ids: Option<Vec<String>>,
}

/// `AuthTokenUpdateStrategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthTokenUpdateStrategy {
    /// The group accepts the new token beside the previous one (at most
    /// two; the oldest goes).
    Rotate,
    /// Only the token of the last `Rotate` from now on.
    Set,
}

/// `DeleteReplicationGroup` (never `RetainPrimaryCluster`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteReplicationGroupRequest {
    pub replication_group_id: String,
    /// `FinalSnapshotIdentifier`; `None` deletes without one.
    pub final_snapshot_id: Option<String>,
}

/// `CreateGlobalReplicationGroup` from an existing (primary) replication group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateGlobalReplicationGroupRequest {
    /// AWS prefixes it with the region's Global Datastore prefix.
    pub suffix: String,
    pub description: String,
    pub primary_replication_group_id: String,
    pub tags: Tags,
}

#[async_trait]
pub trait ElastiCachePort: Send + Sync {
    /// The region this handle talks to.
    fn region(&self) -> &str;

    /// `DescribeGlobalReplicationGroups` with `ShowMemberInfo`: the one named
    /// `id`, or every Global Datastore of the account when `id` is `None`
    /// (the adapter follows the pagination). An unknown `id` yields an empty
    /// list.
    async fn describe_global_replication_groups(
        &self,
        id: Option<&str>,
    ) -> Result<Vec<GlobalReplicationGroup>, CloudError>;

    /// The Global Datastore whose id ends in `-{suffix}` (AWS chose the
    /// prefix), as [`super::names::find_global`] picks it among all of them.
    async fn global_replication_group(
        &self,
        suffix: &str,
    ) -> Result<Option<GlobalReplicationGroup>, CloudError> {
        let all = self.describe_global_replication_groups(None).await?;
        Ok(super::names::find_global(&all, suffix).cloned())
    }

    async fn create_global_replication_group(
        &self,
        request: &CreateGlobalReplicationGroupRequest,
    ) -> Result<GlobalReplicationGroup, CloudError>;

    /// `DeleteGlobalReplicationGroup` with `RetainPrimaryReplicationGroup`:
    /// only a Global Datastore whose secondaries are gone can be deleted,
    /// and its primary stays as a standalone replication group.
    async fn delete_global_replication_group(&self, id: &str) -> Result<(), CloudError>;

    /// `DisassociateGlobalReplicationGroup`: a secondary leaves and becomes
    /// a standalone replication group in its region.
    async fn disassociate_global_replication_group(
        &self,
        global_replication_group_id: &str,
        replication_group_id: &str,
        replication_group_region: &str,
    ) -> Result<(), CloudError>;

    /// `FailoverGlobalReplicationGroup`: the named secondary becomes the
    /// primary, every other member a secondary.
    async fn failover_global_replication_group(
        &self,
        global_replication_group_id: &str,
        primary_region: &str,
        primary_replication_group_id: &str,
    ) -> Result<(), CloudError>;

    /// `DescribeCacheSubnetGroups`: whether this region has a cache subnet
    /// group of that name.
    async fn cache_subnet_group_exists(&self, name: &str) -> Result<bool, CloudError>;

    /// `None` when the replication group does not exist in this region.
    async fn describe_replication_group(
        &self,
        id: &str,
    ) -> Result<Option<ReplicationGroup>, CloudError>;

    /// Every replication group of this region, page after page of
    /// [`crate::cloud::aurora::port::DESCRIBE_PAGE`]: one observation of
    /// the region shared by every shop's health sampler.
    async fn describe_replication_groups(&self) -> Result<Vec<ReplicationGroup>, CloudError>;

    async fn create_replication_group(
        &self,
        request: &CreateReplicationGroupRequest,
    ) -> Result<ReplicationGroup, CloudError>;

    async fn modify_replication_group(
        &self,
        request: &ModifyReplicationGroupRequest,
    ) -> Result<ReplicationGroup, CloudError>;

    async fn delete_replication_group(
        &self,
        request: &DeleteReplicationGroupRequest,
    ) -> Result<(), CloudError>;

    /// `IncreaseReplicaCount` of every shard to `new_replica_count`,
    /// applied immediately.
    async fn increase_replica_count(
        &self,
        replication_group_id: &str,
        new_replica_count: u8,
    ) -> Result<ReplicationGroup, CloudError>;

    /// `DecreaseReplicaCount` of every shard to `new_replica_count`,
    /// applied immediately.
    async fn decrease_replica_count(
        &self,
        replication_group_id: &str,
        new_replica_count: u8,
    ) -> Result<ReplicationGroup, CloudError>;

    /// `ListTagsForResource`.
    async fn list_tags(&self, resource_arn: &str) -> Result<Tags, CloudError>;

    /// `DescribeCacheClusters` of one node of a replication group: the VPC
    /// security groups its nodes are in, sorted (every node of a group has
    /// the group's).
    async fn node_security_groups(&self, cache_cluster_id: &str)
    -> Result<Vec<String>, CloudError>;

    /// `AddTagsToResource`.
    async fn add_tags(&self, resource_arn: &str, tags: &Tags) -> Result<(), CloudError>;

    /// The latest CloudWatch `GlobalDatastoreReplicationLag` (seconds) of a
    /// secondary replication group in the five minutes before `now`. `None`
    /// when there is no data point: the group is the primary, or
    /// replication has stopped.
    async fn replication_lag(
        &self,
        replication_group_id: &str,
        now: Timestamp,
    ) -> Result<Option<Duration>, CloudError>;

    /// The lag of each of `groups` (described groups of this region: their
    /// nodes are the metric's sources), as [`Self::replication_lag`] reads
    /// one, in one `GetMetricData` per
    /// [`crate::cloud::aurora::port::METRIC_QUERIES_PER_CALL`] nodes: one
    /// read for every shop of the region.
    async fn replication_lags(
        &self,
        groups: &[ReplicationGroup],
        now: Timestamp,
    ) -> Result<BTreeMap<String, Option<Duration>>, CloudError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_auth_token_never_shows_in_debug_output() {
        let token = AuthToken::new("correct-horse-battery-staple");
        assert_eq!(format!("{token:?}"), "AuthToken(<redacted>)");
        let request = CreateReplicationGroupRequest {
            replication_group_id: "acme-us-east-1".into(),
            description: "d".into(),
            global_replication_group_id: None,
            engine: Some("redis".into()),
            engine_version: None,
            cache_node_type: Some("cache.r6g.large".into()),
            num_node_groups: Some(1),
            cluster_mode_enabled: Some(false),
            replicas_per_node_group: 1,
            automatic_failover_enabled: Some(true),
            multi_az_enabled: Some(true),
            transit_encryption_enabled: Some(true),
            at_rest_encryption_enabled: Some(true),
            auth_token: Some(token.clone()),
            tags: Tags::new(),
            ..Default::default()
        };
        let debug = format!("{request:?} {request:#?}");
        assert!(!debug.contains("correct-horse"), "{debug}");
        assert_eq!(token.expose(), "correct-horse-battery-staple");
    }

    #[test]
    fn endpoints_of_a_group_follow_its_cluster_mode() {
        let endpoint = |a: &str| Endpoint {
            address: a.into(),
            port: 6379,
        };
        let mut group = ReplicationGroup {
            id: "g".into(),
            arn: "arn".into(),
            description: String::new(),
            status: ReplicationGroupStatus::Available,
            engine: "redis".into(),
            cache_node_type: "cache.r6g.large".into(),
            cluster_enabled: false,
            node_groups: vec![NodeGroup {
                id: "0001".into(),
                status: ReplicationGroupStatus::Available,
                primary_endpoint: Some(endpoint("master.g")),
                reader_endpoint: Some(endpoint("replica.g")),
                members: vec![
                    NodeGroupMember {
                        cache_cluster_id: "g-001".into(),
                        current_role: Some(NodeRole::Primary),
                    },
                    NodeGroupMember {
                        cache_cluster_id: "g-002".into(),
                        current_role: Some(NodeRole::Replica),
                    },
                ],
            }],
            configuration_endpoint: None,
            automatic_failover: AutomaticFailoverStatus::Enabled,
            multi_az: true,
            auth_token_enabled: false,
            transit_encryption_enabled: true,
            at_rest_encryption_enabled: true,
            global_replication_group: None,
            created_at: None,
        };
        assert_eq!(group.replicas_per_shard(), 1);
        assert_eq!(
            group.write_endpoint().map(Endpoint::to_host_port),
            Some("master.g:6379".into())
        );
        assert_eq!(
            group.read_endpoint().map(Endpoint::to_host_port),
            Some("replica.g:6379".into())
        );
        group.configuration_endpoint = Some(endpoint("clustercfg.g"));
        assert_eq!(group.write_endpoint(), Some(&endpoint("clustercfg.g")));
        assert_eq!(group.read_endpoint(), Some(&endpoint("clustercfg.g")));
    }
}
