//! The Aurora port: what shopfleet needs from RDS and CloudWatch, in plain
//! structs that map one-to-one onto the aws-sdk-rds shapes.
//!
//! One handle serves one region, as one SDK client does. Global-cluster calls
//! go through a regional handle too (the global API is served by every
//! regional endpoint), so a region that cannot be reached cannot act on the
//! global cluster either.

use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::jiff::Timestamp;

use crate::cloud::CloudError;
pub use crate::cloud::Tags;
pub use crate::cloud::aws::status::{
    ClusterStatus, GlobalClusterStatus, GlobalFailoverStatus, InstanceStatus,
};

/// The page size of a describe of every resource in a region: AWS's
/// largest for `DescribeDBClusters` and `DescribeReplicationGroups`.
pub const DESCRIBE_PAGE: usize = 100;

/// The most metrics one CloudWatch `GetMetricData` call reads.
pub const METRIC_QUERIES_PER_CALL: usize = 500;

/// `DescribeGlobalClusters` → `GlobalCluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalCluster {
    pub id: String,
    pub arn: String,
    /// `creating`, `available`, `modifying`, `failing-over`, `switching-over`,
    /// `deleting`.
    pub status: GlobalClusterStatus,
    pub engine: String,
    pub engine_version: String,
    pub members: Vec<GlobalMember>,
    /// While on, AWS refuses `DeleteGlobalCluster`. Members are protected
    /// on their own; this guards the global identity and its endpoint while
    /// the global cluster is briefly empty (a primary being rebuilt).
    pub deletion_protection: bool,
    /// The global writer endpoint, which follows the writer across failovers
    /// (absent on engines or accounts that do not offer it).
    pub endpoint: Option<String>,
    /// Set while a failover or switchover is under way.
    pub failover: Option<GlobalFailoverState>,
}

impl GlobalCluster {
    pub fn writer(&self) -> Option<&GlobalMember> {
        self.members.iter().find(|m| m.is_writer)
    }

    pub fn member(&self, cluster_arn: &str) -> Option<&GlobalMember> {
        self.members.iter().find(|m| m.cluster_arn == cluster_arn)
    }
}

/// `GlobalClusterMember`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GlobalMember {
    pub cluster_arn: String,
    /// Parsed from the ARN by the adapter.
    pub region: String,
    pub is_writer: bool,
}

/// `GlobalCluster.FailoverState`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GlobalFailoverState {
    /// `pending`, `failing-over`, `switching-over`, `cancelling`.
    pub status: GlobalFailoverStatus,
    pub from_cluster_arn: String,
    pub to_cluster_arn: String,
    pub allow_data_loss: bool,
}

/// `DescribeDBClusters` → `DBCluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    pub id: String,
    pub arn: String,
    /// `creating`, `available`, `modifying`, `upgrading`, `backing-up`,
    /// `deleting`, …
    pub status: ClusterStatus,
    pub engine: String,
    /// The full version AWS runs, e.g. `16.4`.
    pub engine_version: String,
    pub writer_endpoint: Option<String>,
    pub reader_endpoint: Option<String>,
    /// As AWS reports it: always a key ARN, even when the request named an
    /// alias or a key id.
    pub kms_key_id: Option<String>,
    pub storage_encrypted: bool,
    pub deletion_protection: bool,
    pub tags: Tags,
    /// The global cluster this cluster belongs to, when the adapter knows it
    /// (plans derive membership from the global cluster's member list).
    pub global_cluster_id: Option<String>,
    /// Identifiers of the cluster's instances (`DBClusterMembers`).
    pub members: Vec<String>,
    /// The member whose `IsClusterWriter` is set: the instance taking this
    /// cluster's writes (none in a secondary of a global cluster).
    pub writer: Option<String>,
    pub created_at: Option<Timestamp>,
    /// `DBSubnetGroup`: the subnet group (and so the VPC) the cluster is in.
    pub subnet_group: Option<String>,
    /// `VpcSecurityGroups`, sorted.
    pub security_group_ids: Vec<String>,
    /// `DBClusterParameterGroup`.
    pub parameter_group: Option<String>,
    pub port: Option<i32>,
}

/// `DescribeDBInstances` → `DBInstance`, joined with `DBClusterMembers` for
/// the writer flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub arn: String,
    /// `creating`, `available`, `modifying`, `deleting`, …
    pub status: InstanceStatus,
    pub class: String,
    pub is_writer: bool,
    pub tags: Tags,
    /// The instance's DB parameter group (`DBParameterGroups`, first).
    pub parameter_group: Option<String>,
}

/// One instance of a region-wide `DescribeDBInstances`: the writer flag
/// lives on the cluster (`DBClusterMembers`), so `instance.is_writer` is
/// false until [`instances_of`] joins it with its cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionInstance {
    pub cluster_id: String,
    pub instance: Instance,
}

/// The instances of `cluster` among `all` (a region's, oldest first), in
/// that order, with the writer flag the cluster reports.
pub fn instances_of<'a>(
    cluster: &Cluster,
    all: impl IntoIterator<Item = &'a RegionInstance>,
) -> Vec<Instance> {
    all.into_iter()
        .filter(|i| i.cluster_id == cluster.id)
        .map(|i| Instance {
            is_writer: cluster.writer.as_deref() == Some(i.instance.id.as_str()),
            ..i.instance.clone()
        })
        .collect()
}

/// Oldest first, by creation time then identifier; an instance still being
/// created has no creation time yet and is the newest.
pub fn oldest_first<T>(instances: &mut [(Option<Timestamp>, T)], id: impl Fn(&T) -> &str) {
    instances.sort_by(|(a, ai), (b, bi)| (a.is_none(), a, id(ai)).cmp(&(b.is_none(), b, id(bi))));
}

/// `DescribeDBSubnetGroups` → `DBSubnetGroup`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetGroup {
    pub name: String,
    pub vpc_id: Option<String>,
}

/// The master user's password of a primary cluster. AWS does not support
/// Secrets Manager-managed master passwords in an Aurora Global Database,
/// so the operator generates one, keeps it in a Kubernetes Secret and
/// sends it once, when it creates the primary. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterPassword(String);

impl MasterPassword {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for MasterPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterPassword(<redacted>)")
    }
}

/// `CreateGlobalCluster` from an existing (primary) cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateGlobalClusterRequest {
    pub global_cluster_id: String,
    pub source_cluster_arn: String,
    pub deletion_protection: bool,
    pub tags: Tags,
}

/// `CreateDBCluster`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateClusterRequest {
    pub cluster_id: String,
    pub engine: String,
    pub engine_version: String,
    pub kms_key_id: Option<String>,
    pub storage_encrypted: bool,
    pub deletion_protection: bool,
    pub tags: Tags,
    /// Set for a cluster that joins a global cluster (a secondary), or that
    /// becomes the first member of an empty one.
    pub global_cluster_id: Option<String>,
    /// The master username; only a primary has one.
    pub master_username: Option<String>,
    /// Only for a primary: AWS rejects master credentials on a secondary,
    /// which takes the primary's users through replication.
    pub master_user_password: Option<MasterPassword>,
    /// `DBSubnetGroupName`; `None` places the cluster in the default VPC.
    pub subnet_group_name: Option<String>,
    /// `VpcSecurityGroupIds`.
    pub security_group_ids: Vec<String>,
    /// `Port`; `None` is the engine's.
    pub port: Option<i32>,
    /// `DBClusterParameterGroupName`; `None` is the version's default.
    pub parameter_group_name: Option<String>,
}

/// `ModifyDBCluster`, applied immediately. `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModifyClusterRequest {
    pub cluster_id: String,
    pub engine_version: Option<String>,
    pub deletion_protection: Option<bool>,
    /// Replaces the cluster's VPC security groups.
    pub security_group_ids: Option<Vec<String>>,
    /// Dynamic parameters apply at once; static ones at the next reboot,
    /// which the operator does not force.
    pub parameter_group_name: Option<String>,
}

/// `ModifyDBInstance` with `ApplyImmediately`. `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModifyInstanceRequest {
    pub instance_id: String,
    pub parameter_group_name: Option<String>,
}

/// `ModifyGlobalCluster`, applied at once. `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModifyGlobalClusterRequest {
    pub global_cluster_id: String,
    pub deletion_protection: Option<bool>,
    /// Upgrades every member cluster together: the way AWS upgrades a
    /// global database to a new major version.
    pub engine_version: Option<String>,
    /// Required by AWS when `engine_version` is of another major version.
    pub allow_major_version_upgrade: bool,
}

/// `DeleteDBCluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteClusterRequest {
    pub cluster_id: String,
    pub skip_final_snapshot: bool,
    pub final_snapshot_id: Option<String>,
}

/// `CreateDBInstance` in an Aurora cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateInstanceRequest {
    pub instance_id: String,
    pub cluster_id: String,
    pub class: String,
    pub engine: String,
    pub tags: Tags,
    /// `DBParameterGroupName`; `None` is the version's default.
    pub parameter_group_name: Option<String>,
    // `PubliclyAccessible` is always sent as false: an instance in the
    // default VPC would otherwise get a public address.
}

#[async_trait]
pub trait AuroraPort: Send + Sync {
    /// The region this handle talks to.
    fn region(&self) -> &str;

    /// `None` when the global cluster does not exist.
    async fn describe_global_cluster(&self, id: &str) -> Result<Option<GlobalCluster>, CloudError>;

    async fn create_global_cluster(
        &self,
        request: &CreateGlobalClusterRequest,
    ) -> Result<GlobalCluster, CloudError>;

    async fn modify_global_cluster(
        &self,
        request: &ModifyGlobalClusterRequest,
    ) -> Result<GlobalCluster, CloudError>;

    /// Only an empty, unprotected global cluster can be deleted.
    async fn delete_global_cluster(&self, id: &str) -> Result<(), CloudError>;

    /// Detaches a member; the cluster becomes a standalone cluster. The
    /// writer can only be removed when it is the last member.
    async fn remove_from_global_cluster(
        &self,
        global_cluster_id: &str,
        cluster_arn: &str,
    ) -> Result<(), CloudError>;

    /// `FailoverGlobalCluster`. With `allow_data_loss` the target is promoted
    /// even if the writer is unreachable; without it this is a switchover.
    async fn failover_global_cluster(
        &self,
        global_cluster_id: &str,
        target_cluster_arn: &str,
        allow_data_loss: bool,
    ) -> Result<(), CloudError>;

    /// `SwitchoverGlobalCluster`: a planned, no-data-loss change of writer.
    async fn switchover_global_cluster(
        &self,
        global_cluster_id: &str,
        target_cluster_arn: &str,
    ) -> Result<(), CloudError>;

    /// Every global cluster of the account, page after page of
    /// [`DESCRIBE_PAGE`] (every regional endpoint serves them all).
    async fn describe_global_clusters(&self) -> Result<Vec<GlobalCluster>, CloudError>;

    /// `None` when the cluster does not exist in this region.
    async fn describe_cluster(&self, id: &str) -> Result<Option<Cluster>, CloudError>;

    /// Every cluster of this region, page after page of
    /// [`DESCRIBE_PAGE`]: one observation of the region shared by every
    /// shop's health sampler, whatever the number of shops.
    async fn describe_clusters(&self) -> Result<Vec<Cluster>, CloudError>;

    async fn create_cluster(&self, request: &CreateClusterRequest) -> Result<Cluster, CloudError>;

    async fn modify_cluster(&self, request: &ModifyClusterRequest) -> Result<Cluster, CloudError>;

    async fn delete_cluster(&self, request: &DeleteClusterRequest) -> Result<(), CloudError>;

    /// `AddTagsToResource` on a cluster or instance ARN.
    async fn add_tags(&self, resource_arn: &str, tags: &Tags) -> Result<(), CloudError>;

    /// The instances of a cluster, oldest first.
    async fn list_instances(&self, cluster_id: &str) -> Result<Vec<Instance>, CloudError>;

    /// Every instance of this region, oldest first, page after page of
    /// [`DESCRIBE_PAGE`]: see [`RegionInstance`] for the writer flag.
    async fn describe_instances(&self) -> Result<Vec<RegionInstance>, CloudError>;

    async fn create_instance(
        &self,
        request: &CreateInstanceRequest,
    ) -> Result<Instance, CloudError>;

    async fn delete_instance(&self, instance_id: &str) -> Result<(), CloudError>;

    async fn modify_instance(&self, request: &ModifyInstanceRequest) -> Result<(), CloudError>;

    /// `None` when this region has no DB subnet group of that name.
    async fn describe_subnet_group(&self, name: &str) -> Result<Option<SubnetGroup>, CloudError>;

    /// The full version AWS uses by default for a major version of an
    /// engine (`DescribeDBEngineVersions` with `DefaultOnly`); `None` when
    /// the region offers no such major version.
    async fn default_engine_version(
        &self,
        engine: &str,
        major: &str,
    ) -> Result<Option<String>, CloudError>;

    /// The latest CloudWatch `AuroraGlobalDBReplicationLag` of a secondary
    /// cluster in the five minutes before `now`. `None` when there is no
    /// data point: the cluster is the writer, or replication has stopped.
    async fn replication_lag(
        &self,
        cluster_id: &str,
        now: Timestamp,
    ) -> Result<Option<Duration>, CloudError>;

    /// The lag of each of `cluster_ids` (clusters of this region), as
    /// [`Self::replication_lag`] reads one, in one `GetMetricData` per
    /// [`METRIC_QUERIES_PER_CALL`] clusters: one read for every shop of the
    /// region. A cluster without a data point is `None`.
    async fn replication_lags(
        &self,
        cluster_ids: &[String],
        now: Timestamp,
    ) -> Result<std::collections::BTreeMap<String, Option<Duration>>, CloudError>;
}
