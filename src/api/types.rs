//! The `ShopRegion` custom resource (`shopfleet.io/v1alpha1`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::KubeDuration;

/// One region of one shop. ShopRegions that name the same `shop` form a fleet:
/// one Aurora Global Database, one ElastiCache Global Datastore, one writer
/// region at a time.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "shopfleet.io",
    version = "v1alpha1",
    kind = "ShopRegion",
    doc = "One region of one shop, reconciled into its order workload, Aurora cluster, Redis replication group and failover policy.",
    namespaced,
    status = "ShopRegionStatus",
    shortname = "sr",
    category = "shopfleet",
    printcolumn = r#"{"name":"Region","type":"string","jsonPath":".spec.region"}"#,
    printcolumn = r#"{"name":"Role","type":"string","jsonPath":".status.role"}"#,
    printcolumn = r#"{"name":"Writer","type":"string","jsonPath":".status.writerRegion"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Lag","type":"string","jsonPath":".status.database.replicationLagSeconds","description":"Aurora replication lag behind the writer, seconds"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ShopRegionSpec {
    /// The shop this region belongs to. ShopRegions with the same shop converge
    /// together into one fleet. Lowercase letters, digits and dashes; immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("shop is immutable"))]
    #[schemars(
        length(min = 1, max = 24),
        regex(pattern = r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
    )]
    pub shop: String,

    /// The AWS region this ShopRegion runs in, for example `eu-west-1`. It must
    /// appear in `failover.order`. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("region is immutable"))]
    #[schemars(length(max = 32), regex(pattern = r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$"))]
    pub region: String,

    /// How the fleet chooses and replaces its writer region.
    pub failover: FailoverSpec,

    /// The order service that runs in this region.
    pub orders: OrdersSpec,

    /// This region's Aurora cluster inside the shop's Aurora Global Database.
    pub database: DatabaseSpec,

    /// This region's Redis replication group inside the shop's ElastiCache
    /// Global Datastore.
    #[serde(default)]
    pub cache: CacheSpec,

    /// Regulatory constraints that the operator enforces before creating anything.
    #[serde(default)]
    pub compliance: ComplianceSpec,

    /// Tags added to every AWS resource the operator creates for this region
    /// (clusters, instances, global cluster, replication group), on top of
    /// the operator's own `shopfleet.io/*` ownership tags, which always win
    /// and cannot be set here. A changed tag is applied in place.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('shopfleet.io/') && !k.startsWith('aws:'))").message("tag keys under shopfleet.io/ are the operator's ownership tags and aws: is reserved by AWS; choose another key"))]
    #[x_kube(validation = Rule::new("self.size() <= 40").message("at most 40 user tags: AWS allows 50 per resource and the operator adds its own"))]
    pub tags: BTreeMap<String, String>,
}

/// Failover policy. Every region of a shop should carry the same policy; the
/// operator compares them and refuses to act on a fleet that disagrees.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverSpec {
    /// The shop's regions, most preferred writer first. The first entry is the
    /// initial primary; changing the first entry while the writer is healthy
    /// requests a planned switchover.
    #[schemars(
        length(min = 1, max = 8),
        inner(regex(pattern = r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$")),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub order: Vec<String>,

    /// `Automatic` promotes a secondary when the writer region is lost;
    /// `Manual` only reports what it would do.
    #[serde(default)]
    pub mode: FailoverMode,

    /// How long the writer region must look unhealthy before it is declared
    /// lost, when one kind of evidence says so (its AWS API reports its
    /// database gone, or its endpoints stop answering while AWS vouches for
    /// nothing).
    #[serde(default = "default_unhealthy_after")]
    pub unhealthy_after: KubeDuration,

    /// The shorter window that applies when independent kinds of evidence
    /// agree that the writer region is lost: its AWS control plane, its data
    /// plane (TCP to its endpoints), the configured HTTP health checks, and
    /// replication from it as the other regions see it. At most
    /// `unhealthyAfter`. `docs/failover.md` says which failure each signal
    /// sees.
    #[serde(default = "default_confirmed_loss_after")]
    pub confirmed_loss_after: KubeDuration,

    /// The RPO budget: automatic promotion is refused when the candidate's last
    /// known replication lag exceeds it, unless `allowDataLoss` is true.
    #[serde(default = "default_max_replication_lag")]
    pub max_replication_lag: KubeDuration,

    /// Allow an automatic promotion that may lose more than `maxReplicationLag`
    /// of writes.
    #[serde(default)]
    pub allow_data_loss: bool,

    /// The minimum time between two failovers of the fleet; stops flapping.
    #[serde(default = "default_cooldown")]
    pub cooldown: KubeDuration,

    /// Optional HTTP health checks of the regions' order services. Every
    /// region's controller probes every listed region (GET, 2xx is healthy),
    /// so list the same checks in every ShopRegion of the shop. Plain
    /// `http://` only for now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 8),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["region"])
    )]
    pub health_checks: Vec<HealthCheck>,
}

/// An HTTP health check of one region.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// The region this URL checks; it must appear in `failover.order`.
    #[schemars(length(max = 32), regex(pattern = r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$"))]
    pub region: String,

    /// The URL to GET, for example `http://orders.eu-west-1.acme.internal/healthz`.
    /// Any 2xx answer within the probe timeout counts as healthy.
    #[schemars(length(min = 8, max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub url: String,
}

fn default_unhealthy_after() -> KubeDuration {
    KubeDuration::from_secs(30)
}
fn default_confirmed_loss_after() -> KubeDuration {
    KubeDuration::from_secs(10)
}
fn default_max_replication_lag() -> KubeDuration {
    KubeDuration::from_secs(30)
}
fn default_cooldown() -> KubeDuration {
    KubeDuration::from_secs(600)
}

/// `Automatic` promotes a secondary by itself when the writer region is lost;
/// `Manual` reports what it would do and acts only on a change of
/// `failover.order` committed by a human.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum FailoverMode {
    #[default]
    Automatic,
    Manual,
}

/// The order service and its capacity model.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.peakOrdersPerSecond >= self.baselineOrdersPerSecond").message("peakOrdersPerSecond must be at least baselineOrdersPerSecond"))]
#[x_kube(validation = Rule::new("!has(self.minReplicas) || !has(self.maxReplicas) || self.maxReplicas >= self.minReplicas").message("maxReplicas must be at least minReplicas"))]
pub struct OrdersSpec {
    /// Container image of the order service, for example
    /// `registry.example.com/acme/orders:1.4.2` or pinned by digest.
    #[schemars(length(min = 1, max = 512))]
    pub image: String,

    /// Orders per second one replica sustains within the latency target.
    #[schemars(range(min = 1))]
    pub orders_per_second_per_replica: u32,

    /// Orders per second this region serves on an ordinary day.
    pub baseline_orders_per_second: u32,

    /// Orders per second this region must serve at peak (flash sale).
    pub peak_orders_per_second: u32,

    /// Extra capacity over the computed need, in percent (default 25).
    #[serde(default = "default_headroom_percent")]
    #[schemars(range(max = 400))]
    pub headroom_percent: u32,

    /// Override of the computed minimum replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub min_replicas: Option<i32>,

    /// Override of the computed maximum replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_replicas: Option<i32>,

    /// Compute resources of one order-service container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Extra environment variables of the order-service container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,

    /// The port the order service listens on (HTTP).
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

fn default_headroom_percent() -> u32 {
    25
}
fn default_port() -> i32 {
    8080
}

/// This region's Aurora cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.globalClusterIdentifier) == has(oldSelf.globalClusterIdentifier) && (!has(self.globalClusterIdentifier) || self.globalClusterIdentifier == oldSelf.globalClusterIdentifier)").message("globalClusterIdentifier is immutable"))]
#[x_kube(validation = Rule::new("has(self.network) == has(oldSelf.network) && (!has(self.network) || (self.network.subnetGroupName == oldSelf.network.subnetGroupName && has(self.network.port) == has(oldSelf.network.port) && (!has(self.network.port) || self.network.port == oldSelf.network.port)))").message("database.network.subnetGroupName and port are immutable: AWS cannot move a cluster to another subnet group (or VPC) in place; create a new ShopRegion. securityGroupIds can change"))]
#[x_kube(validation = Rule::new("has(self.kmsKeyId) == has(oldSelf.kmsKeyId) && (!has(self.kmsKeyId) || self.kmsKeyId == oldSelf.kmsKeyId)").message("database.kmsKeyId is immutable: AWS cannot re-encrypt a cluster in place"))]
pub struct DatabaseSpec {
    /// Identifier of the shop's Aurora Global Database. Defaults to
    /// `<shop>-global`. Every region of the shop must name the same one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-zA-Z][a-zA-Z0-9-]*$"))]
    pub global_cluster_identifier: Option<String>,

    /// Aurora engine. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("engine is immutable"))]
    pub engine: AuroraEngine,

    /// Engine version: a major (`16`) or a full version (`16.4`). A major
    /// version matches whatever minor version AWS runs.
    #[schemars(
        length(min = 1, max = 32),
        regex(pattern = r"^[0-9]+(\.[0-9]+){0,3}([.-][a-z0-9._-]+)?$")
    )]
    pub engine_version: String,

    /// Instance class of the writer and reader instances.
    #[serde(default = "default_db_instance_class")]
    #[schemars(regex(pattern = r"^db\.[a-z0-9]+\.[a-z0-9]+$"))]
    pub instance_class: String,

    /// Reader instances in this region (0–15).
    #[serde(default = "default_readers")]
    #[schemars(range(max = 15))]
    pub readers: u8,

    /// Instance class this region's instances take while it is the writer
    /// and absorbs a lost region's load. Defaults to the lost writer's
    /// class when that is larger than `instanceClass`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^db\.[a-z0-9]+\.[a-z0-9]+$"))]
    pub writer_instance_class: Option<String>,

    /// KMS key (ARN, id or alias) for encryption at rest. Required with `pci`.
    /// A secondary region needs a key of its own region. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub kms_key_id: Option<String>,

    /// Where the cluster lives in the account's VPC. Without it AWS places
    /// the cluster in the region's default VPC, which `pci` refuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<DatabaseNetwork>,

    /// Parameter groups of the cluster and of its instances. They are
    /// regional: each region names groups of its own region. Unset means
    /// AWS's default group for the engine version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_groups: Option<DatabaseParameterGroups>,

    /// What happens in AWS when the ShopRegion is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Adopt an existing cluster that has the deterministic identifier instead
    /// of failing because it already exists.
    #[serde(default)]
    pub adopt: bool,
}

/// The account's network that a cluster is placed in.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseNetwork {
    /// An existing DB subnet group of this region (its subnets decide the
    /// VPC and the Availability Zones). Immutable.
    #[schemars(
        length(min = 1, max = 255),
        regex(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9 ._-]*$")
    )]
    pub subnet_group_name: String,

    /// VPC security groups of this region that the cluster joins, in the
    /// subnet group's VPC. Changes are applied in place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5), inner(regex(pattern = r"^sg-[0-9a-f]{8,17}$")))]
    pub security_group_ids: Vec<String>,

    /// The port the cluster listens on; unset means the engine's (5432 or
    /// 3306). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1150, max = 65535))]
    pub port: Option<i32>,
}

/// Parameter group names; unset means the engine version's default group.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseParameterGroups {
    /// DB cluster parameter group. A change is applied in place; parameters
    /// that AWS applies only at reboot wait for the next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 255),
        regex(pattern = r"^[a-zA-Z][a-zA-Z0-9.-]*$")
    )]
    pub cluster: Option<String>,

    /// DB parameter group of every instance. A change is applied in place,
    /// as for the cluster's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 255),
        regex(pattern = r"^[a-zA-Z][a-zA-Z0-9.-]*$")
    )]
    pub instance: Option<String>,
}

fn default_db_instance_class() -> String {
    "db.r6g.large".into()
}
fn default_readers() -> u8 {
    1
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AuroraEngine {
    #[serde(rename = "aurora-postgresql")]
    AuroraPostgresql,
    #[serde(rename = "aurora-mysql")]
    AuroraMysql,
}

impl AuroraEngine {
    pub fn as_str(self) -> &'static str {
        match self {
            AuroraEngine::AuroraPostgresql => "aurora-postgresql",
            AuroraEngine::AuroraMysql => "aurora-mysql",
        }
    }
}

/// `Retain` leaves the cloud resources when the ShopRegion is deleted;
/// `Snapshot` deletes them after a final snapshot; `Delete` deletes them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Retain,
    Snapshot,
    Delete,
}

/// This region's Redis replication group.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.globalReplicationGroupSuffix) == has(oldSelf.globalReplicationGroupSuffix) && (!has(self.globalReplicationGroupSuffix) || self.globalReplicationGroupSuffix == oldSelf.globalReplicationGroupSuffix)").message("globalReplicationGroupSuffix is immutable"))]
#[x_kube(validation = Rule::new("has(self.network) == has(oldSelf.network) && (!has(self.network) || self.network.subnetGroupName == oldSelf.network.subnetGroupName)").message("cache.network.subnetGroupName is immutable: AWS cannot move a replication group to another subnet group in place; securityGroupIds can change"))]
#[x_kube(validation = Rule::new("has(self.kmsKeyId) == has(oldSelf.kmsKeyId) && (!has(self.kmsKeyId) || self.kmsKeyId == oldSelf.kmsKeyId)").message("cache.kmsKeyId is immutable: AWS cannot re-encrypt a replication group in place"))]
pub struct CacheSpec {
    /// Suffix of the Global Datastore name (AWS prefixes it). Defaults to the shop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40), regex(pattern = r"^[a-z][a-z0-9-]*$"))]
    pub global_replication_group_suffix: Option<String>,

    /// Node type; Global Datastores need the m5/r5/m6g/r6g families or newer.
    #[serde(default = "default_cache_node_type")]
    #[schemars(regex(pattern = r"^cache\.[a-z0-9]+\.[a-z0-9]+$"))]
    pub node_type: String,

    /// Shards (node groups); 1 means cluster mode disabled.
    #[serde(default = "default_shards")]
    #[schemars(range(min = 1, max = 500))]
    pub shards: u16,

    /// Replicas in each shard (0–5).
    #[serde(default = "default_replicas_per_shard")]
    #[schemars(range(max = 5))]
    pub replicas_per_shard: u8,

    /// TLS between clients and Redis. Required with `pci`.
    #[serde(default = "default_true")]
    pub transit_encryption: bool,

    /// Encryption at rest. Required with `pci`.
    #[serde(default = "default_true")]
    pub at_rest_encryption: bool,

    /// Secret holding the Redis AUTH token. Required with `pci`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<SecretKeyRef>,

    /// Redis engine version for the Global Datastore, e.g. `7.1`. Only the
    /// primary's create sends it; secondaries inherit the datastore's. Unset
    /// means AWS's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16), regex(pattern = r"^[0-9]+(\.[0-9]+){0,2}$"))]
    pub engine_version: Option<String>,

    /// Cache parameter group (of this region). Only the primary's create
    /// sends it; secondaries inherit the datastore's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 255),
        regex(pattern = r"^[a-zA-Z][a-zA-Z0-9.-]*$")
    )]
    pub parameter_group_name: Option<String>,

    /// KMS key (ARN, id or alias) of this region for encryption at rest.
    /// Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub kms_key_id: Option<String>,

    /// Where the replication group lives in the account's VPC. Without it
    /// AWS uses the region's default VPC, which `pci` refuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<CacheNetwork>,

    /// What happens in AWS when the ShopRegion is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Adopt an existing replication group that has the deterministic
    /// identifier instead of failing because it already exists.
    #[serde(default)]
    pub adopt: bool,
}

impl Default for CacheSpec {
    fn default() -> Self {
        Self {
            global_replication_group_suffix: None,
            node_type: default_cache_node_type(),
            shards: default_shards(),
            replicas_per_shard: default_replicas_per_shard(),
            transit_encryption: true,
            at_rest_encryption: true,
            auth_secret_ref: None,
            engine_version: None,
            parameter_group_name: None,
            kms_key_id: None,
            network: None,
            deletion_policy: DeletionPolicy::Retain,
            adopt: false,
        }
    }
}

fn default_cache_node_type() -> String {
    "cache.r6g.large".into()
}
fn default_shards() -> u16 {
    1
}
fn default_replicas_per_shard() -> u8 {
    1
}
fn default_true() -> bool {
    true
}

/// The account's network that a replication group is placed in.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheNetwork {
    /// An existing cache subnet group of this region. Immutable.
    #[schemars(
        length(min = 1, max = 255),
        regex(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$")
    )]
    pub subnet_group_name: String,

    /// VPC security groups of this region for the replication group.
    /// Changes are applied in place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5), inner(regex(pattern = r"^sg-[0-9a-f]{8,17}$")))]
    pub security_group_ids: Vec<String>,
}

/// Which Redis AUTH token the replication group accepts, by fingerprint: a
/// truncated SHA-256 of the token salted with the replication group's
/// identifier, so that status never holds the token.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthTokenStatus {
    /// The token the group accepts alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<String>,
    /// A new token added with `ROTATE`: the group accepts it and `applied`
    /// until the order pods run with it, then it is `SET` and alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotating_to: Option<String>,
}

/// A key of a Secret in the ShopRegion's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Compliance constraints.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceSpec {
    /// PCI DSS: requires a KMS key for the database, Redis encryption in
    /// transit and at rest, Redis AUTH, and both `network` blocks (no
    /// default VPC). Instances are never publicly accessible, with or
    /// without `pci`.
    #[serde(default)]
    pub pci: bool,

    /// Where the shop's data may live. `EU` allows only `eu-*` regions, `US`
    /// only `us-*`, `None` any region.
    #[serde(default)]
    pub data_residency: DataResidency,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DataResidency {
    #[default]
    None,
    EU,
    US,
}

impl DataResidency {
    /// AWS region-code prefixes where data of this residency may be stored.
    pub fn allowed_region_prefixes(self) -> &'static [&'static str] {
        match self {
            DataResidency::None => &[],
            DataResidency::EU => &["eu-"],
            DataResidency::US => &["us-"],
        }
    }

    pub fn allows(self, region: &str) -> bool {
        let prefixes = self.allowed_region_prefixes();
        prefixes.is_empty() || prefixes.iter().any(|p| region.starts_with(p))
    }
}

/// What the operator observed and decided. Written only by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShopRegionStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, Reconciling, Stalled, WorkloadReady, DatabaseReady, CacheReady,
    /// FailoverReady.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// This region's role in the fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RegionRole>,

    /// The region that currently accepts writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer_region: Option<String>,

    /// The order workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orders: Option<OrdersStatus>,

    /// The Aurora cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseStatus>,

    /// The Redis replication group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheStatus>,

    /// The most recent failover or switchover, including one in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover: Option<FailoverRecord>,

    /// This controller's health verdict of every region of `failover.order`,
    /// from its own probes. Written when a verdict changes, not on every
    /// probe.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["region"]))]
    pub health: Vec<RegionHealth>,

    /// What the failover engine must remember between reconciles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<FailoverStatus>,
}

/// A region's health as one controller sees it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum HealthVerdict {
    /// Every signal is good, for enough consecutive samples.
    Healthy,
    /// The region's data stores are reported broken, or its endpoints are
    /// unreachable while AWS cannot vouch for it, for enough consecutive
    /// samples.
    Unhealthy,
    /// Not enough recent evidence either way (AWS API unreachable while the
    /// endpoints answer, signals disagree, or no recent sample).
    Unknown,
}

impl HealthVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthVerdict::Healthy => "Healthy",
            HealthVerdict::Unhealthy => "Unhealthy",
            HealthVerdict::Unknown => "Unknown",
        }
    }
}

/// One region's health verdict in a controller's status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegionHealth {
    /// The region judged.
    pub region: String,
    /// The verdict, with hysteresis: one bad probe does not make a region
    /// Unhealthy and one good probe does not make it Healthy again.
    pub verdict: HealthVerdict,
    /// RFC 3339: when the verdict began (the first sample of the run that
    /// established it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub since: Option<Timestamp>,
    /// Why, as one CamelCase word: `SignalsHealthy`, `DatabaseUnavailable`,
    /// `CacheUnavailable`, `RegionUnreachable`, `SignalsDisagree`,
    /// `ApiUnreachable`, `SignalsIncomplete`, `Observing`, `NoRecentEvidence`
    /// or `NotYetObserved` (`docs/failover.md` explains each).
    pub reason: String,
    /// The signals behind the verdict, for a human.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// `host:port` probed for TCP reachability (the writer endpoint of the
    /// writer region, the reader endpoint of a secondary). Remembered so that
    /// a region whose AWS API cannot be reached can still be probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// What the failover engine remembers between reconciles, so that a
/// restarted controller decides as the one before it would have.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverStatus {
    /// The first region of `failover.order` this controller last acted on.
    /// A change of the first region away from it is a request (a planned
    /// switchover while the writer is healthy); a writer that differs from
    /// it after an automatic failover is not, so there is no automatic
    /// failback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_region: Option<String>,
    /// RFC 3339: when this controller saw the writer region change, whoever
    /// changed it. The cooldown runs from here too, so a region that cannot
    /// see the other ShopRegions still respects it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub writer_changed_at: Option<Timestamp>,
    /// The last replication lag this region's cluster reported. Kept when
    /// AWS stops reporting lag (it has no data points once the writer's
    /// region is gone): it is the best estimate of the writes a promotion
    /// would lose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_known_lag: Option<LagReading>,
    /// Present while a failover this region would carry out is refused by
    /// the policy (the writer is lost, but promoting would break the RPO
    /// budget, the lag is unknown, or the ShopRegions disagree). Argo CD's
    /// health check reads it as Degraded; a human decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<FailoverRefusal>,
}

/// A failover the policy refuses, kept while the refusal lasts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverRefusal {
    /// `RPOBudgetExceeded`, `ReplicationLagUnknown` or `PoliciesDisagree`.
    pub reason: String,
    /// The lost writer region the refused failover would have replaced;
    /// absent when AWS names no writer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_writer: Option<String>,
    /// Why, for a human: each candidate and what rules it out.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// RFC 3339: when this refusal (same reason, same lost writer) began.
    #[schemars(with = "String")]
    pub since: Timestamp,
}

/// A replication lag reading.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LagReading {
    /// Seconds behind the writer.
    pub seconds: f64,
    /// RFC 3339: when AWS reported it.
    #[schemars(with = "String")]
    pub observed_at: Timestamp,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RegionRole {
    Primary,
    Secondary,
}

impl RegionRole {
    /// The spelling used in the topology ConfigMap the pods read.
    pub fn as_topology_value(self) -> &'static str {
        match self {
            RegionRole::Primary => "primary",
            RegionRole::Secondary => "secondary",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrdersStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default)]
    pub desired_replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    #[serde(default)]
    pub available_replicas: i32,
    #[serde(default)]
    pub min_replicas: i32,
    #[serde(default)]
    pub max_replicas: i32,
    /// True while the region holds extra capacity for a lost region.
    #[serde(default)]
    pub absorbing: bool,
    /// Fingerprint of the Redis AUTH token every order pod runs with, once
    /// a rollout with it has completed (the cache waits for it before it
    /// retires the previous token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_auth_token: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_cluster_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_status: Option<String>,
    #[serde(default)]
    pub writer: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer_region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reader_endpoint: Option<String>,
    #[serde(default)]
    pub readers: i32,
    /// A secondary's replication lag behind the writer, in seconds, from
    /// CloudWatch; it moves when a reading differs from it by a second or
    /// more, and is absent while CloudWatch has no data point
    /// (`shopfleet_replication_lag_seconds` has every reading).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_lag_seconds: Option<f64>,
    /// The full engine version AWS runs (a major version in the spec is
    /// resolved to AWS's default minor once, at creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    /// The Secret in this namespace with the master user's `username` and
    /// `password`; the same for every region of the shop, and valid
    /// whichever region is the writer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_user_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_replication_group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_group_status: Option<String>,
    #[serde(default)]
    pub primary: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reader_endpoint: Option<String>,
    /// A secondary's replication lag behind the primary, in seconds, shown
    /// as `database.replicationLagSeconds` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_lag_seconds: Option<f64>,
    /// The Redis AUTH token's rotation, by fingerprint (never the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<AuthTokenStatus>,
    /// The VPC security groups the nodes were last seen in (or set to);
    /// AWS is asked again only when the spec names others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Unplanned (`Failover`) or planned (`Switchover`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum FailoverKind {
    /// The writer region was lost; a secondary was promoted.
    Failover,
    /// A planned, no-data-loss change of writer requested from Git.
    Switchover,
    /// The cache primary follows a database writer that moved outside a
    /// promotion this region recorded (a human's failover, or the winner of
    /// a race): only the Global Datastore's primary moves.
    CacheFollow,
}

impl FailoverKind {
    /// The word for messages, and the `kind` label of the failover metrics.
    pub fn word(self) -> &'static str {
        match self {
            FailoverKind::Failover => "failover",
            FailoverKind::Switchover => "switchover",
            FailoverKind::CacheFollow => "cache-follow",
        }
    }
}

/// How a recorded failover or switchover ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum FailoverResult {
    /// The target became the writer and every step was carried out.
    Completed,
    /// Given up before AWS was asked to move the writer: the reason for it
    /// went away (the writer recovered, the request was withdrawn).
    Abandoned,
    /// Another region's promotion won (AWS serialises them); this region
    /// adopted its outcome.
    Superseded,
}

impl FailoverResult {
    /// The `result` label of `shopfleet_failovers_total`.
    pub fn metric_label(self) -> &'static str {
        match self {
            FailoverResult::Completed => "completed",
            FailoverResult::Abandoned => "abandoned",
            FailoverResult::Superseded => "superseded",
        }
    }
}

/// One failover or switchover, recorded before the first cloud call and
/// completed after the last, so that a restarted operator resumes it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverRecord {
    /// Unplanned failover or planned switchover.
    pub kind: FailoverKind,
    /// The writer region before.
    pub from: String,
    /// The region promoted; always the region whose status holds the record
    /// while it is in progress (a region only ever promotes itself).
    pub to: String,
    /// Why, for a human: the decision that started it.
    pub reason: String,
    /// RFC 3339: when the intent was recorded, before the first cloud call.
    #[schemars(with = "String")]
    pub started_at: Timestamp,
    /// RFC 3339; absent while in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub completed_at: Option<Timestamp>,
    /// How it ended; absent while in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<FailoverResult>,
    /// Measured from `startedAt` to `completedAt`, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// Replication lag of the promoted region when it was promoted: writes
    /// younger than this may be lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_loss_risk_seconds: Option<f64>,
    /// Steps already carried out, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub completed_steps: Vec<FailoverStep>,
    /// How the writer's loss was detected (failovers only): `Confirmed` when
    /// independent signals agreed for `confirmedLossAfter`, `Sustained` when
    /// one kind of evidence held for `unhealthyAfter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection: Option<Detection>,
}

/// How the loss of a writer region was detected.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Detection {
    /// Independent kinds of signal agreed for `confirmedLossAfter`.
    Confirmed,
    /// One kind of evidence held for `unhealthyAfter`.
    Sustained,
}

impl Detection {
    /// The word for messages, and the `detection` label of the metrics.
    pub fn word(self) -> &'static str {
        match self {
            Detection::Confirmed => "confirmed",
            Detection::Sustained => "sustained",
        }
    }
}

/// A step of a failover or switchover, as `completedSteps` names it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailoverStep {
    /// AWS accepted `FailoverGlobalCluster` (or shows it under way).
    AuroraFailoverRequested,
    /// AWS accepted `SwitchoverGlobalCluster` (or shows it under way).
    AuroraSwitchoverRequested,
    /// AWS reports the target as the writer of the global cluster.
    AuroraWriterMoved,
    /// AWS accepted `FailoverGlobalReplicationGroup`.
    CacheFailoverRequested,
    /// AWS reports the target's replication group as the primary.
    CachePrimaryMoved,
    /// The shop has no Global Datastore member in the target: nothing to move.
    CacheNotInGlobalDatastore,
    /// The target's topology ConfigMap carries the primary role.
    TopologyUpdated,
}

impl FailoverStep {
    /// The name in `completedSteps`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailoverStep::AuroraFailoverRequested => "AuroraFailoverRequested",
            FailoverStep::AuroraSwitchoverRequested => "AuroraSwitchoverRequested",
            FailoverStep::AuroraWriterMoved => "AuroraWriterMoved",
            FailoverStep::CacheFailoverRequested => "CacheFailoverRequested",
            FailoverStep::CachePrimaryMoved => "CachePrimaryMoved",
            FailoverStep::CacheNotInGlobalDatastore => "CacheNotInGlobalDatastore",
            FailoverStep::TopologyUpdated => "TopologyUpdated",
        }
    }

    /// The Aurora request step of a kind of promotion; `None` when the
    /// kind asks Aurora for nothing.
    pub fn aurora_requested(kind: FailoverKind) -> Option<Self> {
        match kind {
            FailoverKind::Failover => Some(FailoverStep::AuroraFailoverRequested),
            FailoverKind::Switchover => Some(FailoverStep::AuroraSwitchoverRequested),
            FailoverKind::CacheFollow => None,
        }
    }

    /// `steps` as a comma-separated list, for a human.
    pub fn list(steps: &[FailoverStep]) -> String {
        steps
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for FailoverStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
