//! The Aurora plan: a pure function from the spec and what AWS shows to the
//! next step(s) for this region.
//!
//! One step per pass: a create or delete is issued, the reconcile requeues,
//! and the next pass sees its effect. Long AWS operations are never awaited;
//! a resource that is not `available` yields a `Wait`, never an error.

use std::time::Duration;

use crate::api::{ShopRegionSpec, SpecError};
use crate::cloud::executor::{CloudPlan, Step};
use crate::cloud::{arn_region, requeue};

use super::names::{
    Ownership, VersionMatch, cluster_id, compare_version, global_cluster_id, instance_id,
    instance_slot, ownership, ownership_tags,
};
use super::port::{
    Cluster, ClusterStatus, CreateClusterRequest, CreateGlobalClusterRequest,
    CreateInstanceRequest, GlobalCluster, GlobalClusterStatus, Instance, InstanceStatus,
    ModifyClusterRequest, ModifyGlobalClusterRequest, Tags,
};

/// The master user of a primary cluster. Its password is generated and
/// rotated by Secrets Manager (`ManageMasterUserPassword`), never in the spec
/// or status. Valid for both engines (MySQL caps it at 16 characters).
pub const MASTER_USERNAME: &str = "shopfleet_admin";

/// Condition reasons for `DatabaseReady`, and the spec-error reasons of the
/// Aurora concern.
pub mod reason {
    pub use crate::cloud::reason::*;
    pub const CREATING_GLOBAL_CLUSTER: &str = "CreatingGlobalCluster";
    pub const SCALING_READERS: &str = "ScalingReaders";
    pub const UPGRADING: &str = "Upgrading";
    pub const PROTECTING_GLOBAL_CLUSTER: &str = "ProtectingGlobalCluster";
    pub const CLUSTER_BUSY: &str = "ClusterBusy";
    pub const CLUSTER_UNHEALTHY: &str = "ClusterUnhealthy";

    // Terminal: the spec (or a resource in the way) must change.
    pub const OWNED_BY_ANOTHER_SHOP: &str = "ClusterOwnedByAnotherShop";
    pub const ENGINE_MISMATCH: &str = "EngineMismatch";
    pub const ENGINE_MAJOR_VERSION_MISMATCH: &str = "EngineMajorVersionMismatch";
    pub const CLUSTER_OUTSIDE_GLOBAL_CLUSTER: &str = "ClusterOutsideGlobalCluster";
    pub const CLUSTER_IN_ANOTHER_GLOBAL_CLUSTER: &str = "ClusterInAnotherGlobalCluster";
    pub const KMS_KEY_IN_ANOTHER_REGION: &str = "KmsKeyInAnotherRegion";
    pub const CLUSTER_NOT_ENCRYPTED: &str = "ClusterNotEncrypted";
}

/// What the plan looks at. The region is `spec.region`.
#[derive(Clone, Copy, Debug)]
pub struct AuroraPlanInput<'a> {
    pub spec: &'a ShopRegionSpec,
    /// The shop's global cluster, if it exists.
    pub global: Option<&'a GlobalCluster>,
    /// This region's cluster (deterministic identifier), if it exists.
    pub cluster: Option<&'a Cluster>,
    /// Its instances, oldest first.
    pub instances: &'a [Instance],
}

/// What the plan says for this region's cluster.
pub type AuroraPlan = CloudPlan<AuroraAction>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuroraAction {
    CreatePrimaryCluster {
        request: CreateClusterRequest,
    },
    CreateWriter {
        request: CreateInstanceRequest,
    },
    CreateGlobalClusterFrom {
        request: CreateGlobalClusterRequest,
    },
    CreateSecondaryCluster {
        request: CreateClusterRequest,
    },
    CreateReader {
        request: CreateInstanceRequest,
    },
    DeleteReader {
        instance_id: String,
    },
    TagForAdoption {
        resource_arn: String,
        tags: Tags,
    },
    ModifyCluster {
        request: ModifyClusterRequest,
    },
    ModifyGlobalCluster {
        request: ModifyGlobalClusterRequest,
    },
    /// Nothing to do until AWS finishes something or another region acts.
    Wait {
        reason: &'static str,
        message: String,
        /// When to look again.
        poll: Duration,
    },
}

impl Step for AuroraAction {
    /// The `DatabaseReady` reason while this step is under way.
    fn reason(&self) -> &str {
        match self {
            Self::CreatePrimaryCluster { .. } | Self::CreateWriter { .. } => reason::CREATING,
            Self::CreateGlobalClusterFrom { .. } => reason::CREATING_GLOBAL_CLUSTER,
            Self::CreateSecondaryCluster { .. } => reason::JOINING,
            Self::CreateReader { .. } | Self::DeleteReader { .. } => reason::SCALING_READERS,
            Self::TagForAdoption { .. } => reason::ADOPTING,
            Self::ModifyCluster { .. } => reason::UPGRADING,
            Self::ModifyGlobalCluster { .. } => reason::PROTECTING_GLOBAL_CLUSTER,
            Self::Wait { reason, .. } => reason,
        }
    }

    /// One line for conditions and events.
    fn describe(&self) -> String {
        match self {
            Self::CreatePrimaryCluster { request } => format!(
                "creating primary cluster {} ({} {})",
                request.cluster_id, request.engine, request.engine_version
            ),
            Self::CreateWriter { request } => format!(
                "creating writer instance {} ({})",
                request.instance_id, request.class
            ),
            Self::CreateGlobalClusterFrom { request } => format!(
                "creating global cluster {} from {}",
                request.global_cluster_id, request.source_cluster_arn
            ),
            Self::CreateSecondaryCluster { request } => format!(
                "creating secondary cluster {} in global cluster {}",
                request.cluster_id,
                request.global_cluster_id.as_deref().unwrap_or("?")
            ),
            Self::CreateReader { request } => format!(
                "creating reader instance {} ({})",
                request.instance_id, request.class
            ),
            Self::DeleteReader { instance_id } => format!("deleting reader instance {instance_id}"),
            Self::TagForAdoption { resource_arn, .. } => format!("adopting {resource_arn}"),
            Self::ModifyCluster { request } => format!(
                "upgrading cluster {} to engine version {}",
                request.cluster_id,
                request.engine_version.as_deref().unwrap_or("?")
            ),
            Self::ModifyGlobalCluster { request } => {
                let mut changes = Vec::new();
                if let Some(on) = request.deletion_protection {
                    changes.push(format!(
                        "turning deletion protection {}",
                        if on { "on" } else { "off" }
                    ));
                }
                if let Some(version) = &request.engine_version {
                    changes.push(format!("upgrading to engine version {version}"));
                }
                format!(
                    "{} of global cluster {}",
                    changes.join(" and "),
                    request.global_cluster_id
                )
            }
            Self::Wait { message, .. } => message.clone(),
        }
    }

    fn event_reason(&self) -> Option<&'static str> {
        Some(match self {
            Self::CreatePrimaryCluster { .. } => "CreatingPrimaryCluster",
            Self::CreateWriter { .. } => "CreatingWriterInstance",
            Self::CreateGlobalClusterFrom { .. } => "CreatingGlobalCluster",
            Self::CreateSecondaryCluster { .. } => "JoiningGlobalCluster",
            Self::CreateReader { .. } => "CreatingReaderInstance",
            Self::DeleteReader { .. } => "DeletingReaderInstance",
            Self::TagForAdoption { .. } => "AdoptingCluster",
            Self::ModifyCluster { .. } => "UpgradingEngine",
            Self::ModifyGlobalCluster { .. } => "ProtectingGlobalCluster",
            Self::Wait { .. } => return None,
        })
    }

    fn creates(&self) -> bool {
        matches!(
            self,
            Self::CreatePrimaryCluster { .. }
                | Self::CreateSecondaryCluster { .. }
                | Self::CreateWriter { .. }
                | Self::CreateReader { .. }
                | Self::CreateGlobalClusterFrom { .. }
        )
    }

    fn refused_field(&self) -> Option<&'static str> {
        match self {
            Self::CreatePrimaryCluster { .. } | Self::CreateSecondaryCluster { .. } => {
                Some("spec.database")
            }
            Self::CreateWriter { .. } | Self::CreateReader { .. } => {
                Some("spec.database.instanceClass")
            }
            Self::ModifyCluster { .. } => Some("spec.database.engineVersion"),
            Self::CreateGlobalClusterFrom { .. } => Some("spec.database.globalClusterIdentifier"),
            Self::DeleteReader { .. }
            | Self::TagForAdoption { .. }
            | Self::ModifyGlobalCluster { .. }
            | Self::Wait { .. } => None,
        }
    }

    fn wait_interval(&self) -> std::time::Duration {
        match self {
            Self::Wait { poll, .. } => *poll,
            // A step that calls AWS is polled soon after its call.
            _ => requeue::AFTER_ACTION,
        }
    }
}

pub fn plan(input: &AuroraPlanInput) -> AuroraPlan {
    if let Some(error) = check_spec(input.spec) {
        return AuroraPlan::Terminal(error);
    }
    match input.cluster {
        None => plan_without_cluster(input),
        Some(cluster) => plan_with_cluster(input, cluster),
    }
}

fn is_first_in_order(spec: &ShopRegionSpec) -> bool {
    spec.failover.order.first() == Some(&spec.region)
}

fn spec_error(reason: &'static str, field: &str, message: impl Into<String>) -> AuroraPlan {
    AuroraPlan::Terminal(SpecError {
        reason,
        field: field.to_string(),
        message: message.into(),
    })
}

/// A wait: nothing to call now; look again after `poll`, which the plan
/// chooses with the reason (minutes for AWS's long operations, longer for a
/// state only a human or AWS can mend).
fn wait(reason: &'static str, poll: Duration, message: impl Into<String>) -> AuroraPlan {
    AuroraPlan::Steps(vec![AuroraAction::Wait {
        reason,
        message: message.into(),
        poll,
    }])
}

fn step(action: AuroraAction) -> AuroraPlan {
    AuroraPlan::Steps(vec![action])
}

/// Mistakes AWS would only report after a create was attempted.
fn check_spec(spec: &ShopRegionSpec) -> Option<SpecError> {
    let key = spec.database.kms_key_id.as_deref()?;
    let key_region = arn_region(key)?;
    (key_region != spec.region).then(|| SpecError {
        reason: reason::KMS_KEY_IN_ANOTHER_REGION,
        field: "spec.database.kmsKeyId".into(),
        message: format!(
            "KMS key {key} is in {key_region}; the cluster in {} needs a key of its own region",
            spec.region
        ),
    })
}

fn create_cluster_request(
    spec: &ShopRegionSpec,
    engine_version: &str,
    global_cluster_id: Option<String>,
    primary: bool,
) -> CreateClusterRequest {
    CreateClusterRequest {
        cluster_id: cluster_id(spec),
        engine: spec.database.engine.as_str().to_string(),
        engine_version: engine_version.to_string(),
        kms_key_id: spec.database.kms_key_id.clone(),
        storage_encrypted: true,
        deletion_protection: true,
        tags: ownership_tags(spec),
        global_cluster_id,
        master_username: primary.then(|| MASTER_USERNAME.to_string()),
        manage_master_user_password: primary,
    }
}

fn plan_without_cluster(input: &AuroraPlanInput) -> AuroraPlan {
    let spec = input.spec;
    let gid = global_cluster_id(spec);
    let first = spec
        .failover
        .order
        .first()
        .map(String::as_str)
        .unwrap_or("?");
    let Some(global) = input.global else {
        if is_first_in_order(spec) {
            return step(AuroraAction::CreatePrimaryCluster {
                request: create_cluster_request(spec, &spec.database.engine_version, None, true),
            });
        }
        return wait(
            reason::WAITING_FOR_PRIMARY,
            requeue::LONG_OPERATION,
            format!("waiting for {first} to create global cluster {gid}"),
        );
    };
    if let Some(error) = check_global_matches_spec(spec, global) {
        return error;
    }
    if global.status != GlobalClusterStatus::Available {
        return wait(
            reason::WAITING_FOR_PRIMARY,
            requeue::LONG_OPERATION,
            format!("global cluster {gid} is {}", global.status),
        );
    }
    if global.writer().is_some() {
        // The secondary takes the global cluster's exact version: AWS
        // refuses a member whose version differs, and a requested minor
        // upgrade is applied once the cluster exists.
        return step(AuroraAction::CreateSecondaryCluster {
            request: create_cluster_request(spec, &global.engine_version, Some(gid), false),
        });
    }
    if global.members.is_empty() && is_first_in_order(spec) {
        // An empty global cluster (its primary was removed) takes a new
        // primary created directly inside it.
        return step(AuroraAction::CreatePrimaryCluster {
            request: create_cluster_request(spec, &global.engine_version, Some(gid), true),
        });
    }
    wait(
        reason::WAITING_FOR_PRIMARY,
        requeue::LONG_OPERATION,
        format!("global cluster {gid} has no writer yet"),
    )
}

fn check_global_matches_spec(spec: &ShopRegionSpec, global: &GlobalCluster) -> Option<AuroraPlan> {
    if global.engine != spec.database.engine.as_str() {
        return Some(spec_error(
            reason::ENGINE_MISMATCH,
            "spec.database.engine",
            format!(
                "global cluster {} runs {}, the spec asks for {}",
                global.id,
                global.engine,
                spec.database.engine.as_str()
            ),
        ));
    }
    (compare_version(&spec.database.engine_version, &global.engine_version) == VersionMatch::OtherMajor)
        .then(|| {
            spec_error(
                reason::ENGINE_MAJOR_VERSION_MISMATCH,
                "spec.database.engineVersion",
                format!(
                    "global cluster {} runs {} {}, the spec asks for {}; major version upgrades of a global database are not automated",
                    global.id, global.engine, global.engine_version, spec.database.engine_version
                ),
            )
        })
}

fn plan_with_cluster(input: &AuroraPlanInput, cluster: &Cluster) -> AuroraPlan {
    let spec = input.spec;
    let gid = global_cluster_id(spec);

    match ownership(&cluster.tags, spec) {
        Ownership::Ours => {}
        Ownership::OtherShop(shop) => {
            return spec_error(
                reason::OWNED_BY_ANOTHER_SHOP,
                "spec.shop",
                format!(
                    "cluster {} is tagged for shop {shop}; shopfleet will not take it over",
                    cluster.id
                ),
            );
        }
        Ownership::Untagged if !spec.database.adopt => {
            return spec_error(
                reason::ADOPTION_REQUIRED,
                "spec.database.adopt",
                format!(
                    "cluster {} already exists and was not created by shopfleet; set spec.database.adopt: true to manage it",
                    cluster.id
                ),
            );
        }
        Ownership::Untagged => {
            return step(AuroraAction::TagForAdoption {
                resource_arn: cluster.arn.clone(),
                tags: ownership_tags(spec),
            });
        }
    }

    if cluster.engine != spec.database.engine.as_str() {
        return spec_error(
            reason::ENGINE_MISMATCH,
            "spec.database.engine",
            format!(
                "cluster {} runs {}, the spec asks for {}",
                cluster.id,
                cluster.engine,
                spec.database.engine.as_str()
            ),
        );
    }
    if spec.database.kms_key_id.is_some() && !cluster.storage_encrypted {
        return spec_error(
            reason::CLUSTER_NOT_ENCRYPTED,
            "spec.database.kmsKeyId",
            format!(
                "cluster {} is not encrypted at rest and AWS cannot encrypt it in place; restore it from an encrypted snapshot",
                cluster.id
            ),
        );
    }
    if let Some(other) = cluster.global_cluster_id.as_deref().filter(|g| *g != gid) {
        return spec_error(
            reason::CLUSTER_IN_ANOTHER_GLOBAL_CLUSTER,
            "spec.database.globalClusterIdentifier",
            format!(
                "cluster {} belongs to global cluster {other}, not {gid}",
                cluster.id
            ),
        );
    }

    let member = input.global.and_then(|g| g.member(&cluster.arn));
    match (input.global, member) {
        (Some(global), None) => {
            if cluster.global_cluster_id.as_deref() == Some(gid.as_str()) {
                // The cluster names the global cluster but the member list
                // does not show it yet: AWS is still attaching it.
                return wait(
                    reason::JOINING,
                    requeue::LONG_OPERATION,
                    format!("cluster {} is joining {gid}", cluster.id),
                );
            }
            if let Some(error) = check_global_matches_spec(spec, global) {
                return error;
            }
            return spec_error(
                reason::CLUSTER_OUTSIDE_GLOBAL_CLUSTER,
                "spec.database.globalClusterIdentifier",
                format!(
                    "cluster {} exists outside global cluster {gid}, and AWS cannot add an existing cluster to a global database; \
                     delete the cluster (a secondary is recreated empty and replicates) or set the global cluster identifier it belongs to",
                    cluster.id
                ),
            );
        }
        (None, _) if cluster.global_cluster_id.is_some() => {
            return wait(
                reason::WAITING_FOR_PRIMARY,
                requeue::LONG_OPERATION,
                format!("global cluster {gid} is not visible yet"),
            );
        }
        (None, _) if !is_first_in_order(spec) => {
            let first = spec
                .failover
                .order
                .first()
                .map(String::as_str)
                .unwrap_or("?");
            return wait(
                reason::WAITING_FOR_PRIMARY,
                requeue::LONG_OPERATION,
                format!("waiting for {first} to create global cluster {gid}"),
            );
        }
        _ => {}
    }
    // A member's role comes from AWS; a standalone cluster is the primary to
    // be (only the first region in the order gets this far without a global
    // cluster).
    let primary = member.is_none_or(|m| m.is_writer);

    if cluster.status != ClusterStatus::Available {
        return wait_for_cluster_state(cluster, primary);
    }
    if let Some(plan) = wait_for_instances(cluster, input.instances) {
        return plan;
    }
    if input.instances.is_empty() {
        let request = instance_request(spec, cluster, next_free_slot(cluster, input.instances));
        return step(if primary {
            AuroraAction::CreateWriter { request }
        } else {
            AuroraAction::CreateReader { request }
        });
    }
    if input.global.is_none() {
        return step(AuroraAction::CreateGlobalClusterFrom {
            request: CreateGlobalClusterRequest {
                global_cluster_id: gid,
                source_cluster_arn: cluster.arn.clone(),
                deletion_protection: true,
                tags: ownership_tags(spec),
            },
        });
    }

    if let Some(global) = input.global
        && primary
        && !global.deletion_protection
        && global.status == GlobalClusterStatus::Available
    {
        // The data is protected on each member; the global cluster's own
        // protection keeps its identity and writer endpoint while it is
        // briefly empty (a primary rebuilt inside it). Only the writer's
        // region acts, so one call is made, not one per region. An adopted
        // global cluster is the usual case: shopfleet creates them
        // protected.
        return step(AuroraAction::ModifyGlobalCluster {
            request: ModifyGlobalClusterRequest {
                global_cluster_id: global.id.clone(),
                deletion_protection: Some(true),
                ..ModifyGlobalClusterRequest::default()
            },
        });
    }

    let mut notes = Vec::new();
    if let Some(plan) = plan_instances(spec, cluster, input.instances, &mut notes) {
        return plan;
    }

    match compare_version(&spec.database.engine_version, &cluster.engine_version) {
        VersionMatch::Satisfied => {}
        VersionMatch::NewerThanRequested => notes.push(format!(
            "cluster runs {} {}, newer than the requested {}; AWS does not downgrade",
            cluster.engine, cluster.engine_version, spec.database.engine_version
        )),
        VersionMatch::OtherMajor => {
            return spec_error(
                reason::ENGINE_MAJOR_VERSION_MISMATCH,
                "spec.database.engineVersion",
                format!(
                    "cluster {} runs {} {}, the spec asks for {}; major version upgrades of a global database are not automated",
                    cluster.id,
                    cluster.engine,
                    cluster.engine_version,
                    spec.database.engine_version
                ),
            );
        }
        VersionMatch::UpgradeMinor => {
            if let Some(global) = input
                .global
                .filter(|g| g.status != GlobalClusterStatus::Available)
            {
                return wait(
                    reason::UPGRADING,
                    requeue::LONG_OPERATION,
                    format!(
                        "engine upgrade waits for global cluster {} ({})",
                        global.id, global.status
                    ),
                );
            }
            return step(AuroraAction::ModifyCluster {
                request: ModifyClusterRequest {
                    cluster_id: cluster.id.clone(),
                    engine_version: Some(spec.database.engine_version.clone()),
                    deletion_protection: None,
                },
            });
        }
    }
    AuroraPlan::Converged { notes }
}

fn wait_for_cluster_state(cluster: &Cluster, primary: bool) -> AuroraPlan {
    let status = &cluster.status;
    let (reason, poll) = match status {
        ClusterStatus::Creating if primary => (reason::CREATING, requeue::LONG_OPERATION),
        ClusterStatus::Creating => (reason::JOINING, requeue::LONG_OPERATION),
        ClusterStatus::Upgrading => (reason::UPGRADING, requeue::LONG_OPERATION),
        ClusterStatus::Deleting => (reason::DELETING, requeue::SHORT_OPERATION),
        ClusterStatus::Modifying
        | ClusterStatus::BackingUp
        | ClusterStatus::Maintenance
        | ClusterStatus::Renaming
        | ClusterStatus::ResettingMasterCredentials
        | ClusterStatus::StorageOptimization
        | ClusterStatus::Migrating
        | ClusterStatus::Promoting
        | ClusterStatus::Starting
        | ClusterStatus::Rebooting
        | ClusterStatus::FailingOver
        | ClusterStatus::SwitchingOver
        | ClusterStatus::UpdateIamDbAuth => (reason::CLUSTER_BUSY, requeue::SHORT_OPERATION),
        // `failed`, `stopped`, `inaccessible-encryption-credentials`, … need
        // a human or AWS, but they are not the spec's fault: keep polling.
        _ => (reason::CLUSTER_UNHEALTHY, requeue::NEEDS_ATTENTION),
    };
    wait(reason, poll, format!("cluster {} is {status}", cluster.id))
}

fn wait_for_instances(cluster: &Cluster, instances: &[Instance]) -> Option<AuroraPlan> {
    let busy = instances
        .iter()
        .find(|i| i.status != InstanceStatus::Available)?;
    let (reason, poll) = match busy.status {
        InstanceStatus::Creating
            if !instances
                .iter()
                .any(|i| i.status == InstanceStatus::Available) =>
        {
            (reason::CREATING, requeue::LONG_OPERATION)
        }
        InstanceStatus::Creating | InstanceStatus::Deleting => {
            (reason::SCALING_READERS, requeue::SHORT_OPERATION)
        }
        _ => (reason::CLUSTER_BUSY, requeue::SHORT_OPERATION),
    };
    Some(wait(
        reason,
        poll,
        format!(
            "instance {} of cluster {} is {}",
            busy.id, cluster.id, busy.status
        ),
    ))
}

fn instance_request(spec: &ShopRegionSpec, cluster: &Cluster, slot: u32) -> CreateInstanceRequest {
    CreateInstanceRequest {
        instance_id: instance_id(&cluster.id, slot),
        cluster_id: cluster.id.clone(),
        class: spec.database.instance_class.clone(),
        engine: spec.database.engine.as_str().to_string(),
        tags: ownership_tags(spec),
    }
}

fn next_free_slot(cluster: &Cluster, instances: &[Instance]) -> u32 {
    let used: Vec<u32> = instances
        .iter()
        .filter_map(|i| instance_slot(&cluster.id, &i.id))
        .collect();
    (0..)
        .find(|n| !used.contains(n))
        .expect("a free slot below u32::MAX")
}

/// Keeps `1 + readers` instances of `instanceClass`, one create or delete at
/// a time. Every region keeps the same shape (a secondary's first instance
/// takes the writer role after a promotion). A class change replaces reader
/// instances by surge: one new instance, then one old one deleted.
fn plan_instances(
    spec: &ShopRegionSpec,
    cluster: &Cluster,
    instances: &[Instance],
    notes: &mut Vec<String>,
) -> Option<AuroraPlan> {
    let class = &spec.database.instance_class;
    let desired = 1 + usize::from(spec.database.readers);
    if instances.len() < desired {
        return Some(step(AuroraAction::CreateReader {
            request: instance_request(spec, cluster, next_free_slot(cluster, instances)),
        }));
    }
    let mut candidates: Vec<&Instance> = instances.iter().filter(|i| !i.is_writer).collect();
    // Delete the wrong class first, then our newest slot, then foreign names.
    candidates.sort_by_key(|i| {
        (
            i.class == *class,
            std::cmp::Reverse(instance_slot(&cluster.id, &i.id).map_or(-1, i64::from)),
            std::cmp::Reverse(i.id.clone()),
        )
    });
    if instances.len() > desired {
        let victim = candidates.first()?;
        return Some(step(AuroraAction::DeleteReader {
            instance_id: victim.id.clone(),
        }));
    }
    if candidates.iter().any(|i| i.class != *class) {
        return Some(step(AuroraAction::CreateReader {
            request: instance_request(spec, cluster, next_free_slot(cluster, instances)),
        }));
    }
    if let Some(writer) = instances.iter().find(|i| i.is_writer && i.class != *class) {
        notes.push(format!(
            "writer instance {} keeps class {}; shopfleet replaces reader instances only",
            writer.id, writer.class
        ));
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::fixtures::acme;
    use crate::cloud::aurora::port::GlobalMember;

    pub(crate) fn arn(region: &str, id: &str) -> String {
        format!("arn:aws:rds:{region}:123456789012:cluster:{id}")
    }

    pub(crate) fn cluster(spec: &ShopRegionSpec, status: ClusterStatus) -> Cluster {
        let id = cluster_id(spec);
        Cluster {
            arn: arn(&spec.region, &id),
            status,
            engine: "aurora-postgresql".into(),
            engine_version: "16.4".into(),
            writer_endpoint: Some(format!("{id}.cluster-x.{}.rds.amazonaws.com", spec.region)),
            reader_endpoint: Some(format!(
                "{id}.cluster-ro-x.{}.rds.amazonaws.com",
                spec.region
            )),
            kms_key_id: Some(format!(
                "arn:aws:kms:{}:123456789012:key/default",
                spec.region
            )),
            storage_encrypted: true,
            deletion_protection: true,
            tags: ownership_tags(spec),
            global_cluster_id: None,
            members: vec![],
            created_at: None,
            id,
        }
    }

    pub(crate) fn instance(
        spec: &ShopRegionSpec,
        slot: u32,
        status: InstanceStatus,
        is_writer: bool,
    ) -> Instance {
        let id = instance_id(&cluster_id(spec), slot);
        Instance {
            arn: format!("arn:aws:rds:{}:123456789012:db:{id}", spec.region),
            id,
            status,
            class: "db.r6g.large".into(),
            is_writer,
            tags: ownership_tags(spec),
        }
    }

    /// A global cluster whose writer is `writer` and whose other members are
    /// `secondaries`.
    pub(crate) fn global(
        status: GlobalClusterStatus,
        writer: Option<&str>,
        secondaries: &[&str],
    ) -> GlobalCluster {
        let mut members = Vec::new();
        for (region, is_writer) in writer
            .iter()
            .map(|r| (*r, true))
            .chain(secondaries.iter().map(|r| (*r, false)))
        {
            members.push(GlobalMember {
                cluster_arn: arn(region, &format!("acme-{region}")),
                region: region.into(),
                is_writer,
            });
        }
        GlobalCluster {
            id: "acme-global".into(),
            arn: "arn:aws:rds::123456789012:global-cluster:acme-global".into(),
            status,
            engine: "aurora-postgresql".into(),
            engine_version: "16.4".into(),
            members,
            deletion_protection: true,
            endpoint: None,
            failover: None,
        }
    }

    fn run(
        spec: &ShopRegionSpec,
        global: Option<&GlobalCluster>,
        cluster: Option<&Cluster>,
        instances: &[Instance],
    ) -> AuroraPlan {
        plan(&AuroraPlanInput {
            spec,
            global,
            cluster,
            instances,
        })
    }

    fn only_step(plan: AuroraPlan) -> AuroraAction {
        match plan {
            AuroraPlan::Steps(mut steps) if steps.len() == 1 => steps.remove(0),
            other => panic!("expected one step, got {other:?}"),
        }
    }

    fn wait_reason(plan: AuroraPlan) -> &'static str {
        match only_step(plan) {
            AuroraAction::Wait { reason, .. } => reason,
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    fn terminal(plan: AuroraPlan) -> SpecError {
        match plan {
            AuroraPlan::Terminal(e) => e,
            other => panic!("expected a terminal error, got {other:?}"),
        }
    }

    /// A converged primary: us-east-1 writer with one reader.
    fn converged_primary() -> (ShopRegionSpec, GlobalCluster, Cluster, Vec<Instance>) {
        let spec = acme("us-east-1");
        let g = global(
            GlobalClusterStatus::Available,
            Some("us-east-1"),
            &["eu-west-1"],
        );
        let c = cluster(&spec, ClusterStatus::Available);
        let i = vec![
            instance(&spec, 0, InstanceStatus::Available, true),
            instance(&spec, 1, InstanceStatus::Available, false),
        ];
        (spec, g, c, i)
    }

    #[test]
    fn first_region_without_a_global_cluster_creates_an_encrypted_protected_primary() {
        let spec = acme("us-east-1");
        let AuroraAction::CreatePrimaryCluster { request } = only_step(run(&spec, None, None, &[]))
        else {
            panic!("expected CreatePrimaryCluster");
        };
        assert_eq!(request.cluster_id, "acme-us-east-1");
        assert_eq!(request.engine, "aurora-postgresql");
        assert_eq!(request.engine_version, "16");
        assert!(request.storage_encrypted);
        assert!(request.deletion_protection);
        assert!(request.manage_master_user_password);
        assert_eq!(request.master_username.as_deref(), Some(MASTER_USERNAME));
        assert_eq!(request.global_cluster_id, None);
        assert_eq!(request.tags, ownership_tags(&spec));
    }

    #[test]
    fn primary_cluster_uses_the_spec_kms_key() {
        let mut spec = acme("us-east-1");
        spec.database.kms_key_id = Some("alias/acme-orders".into());
        let AuroraAction::CreatePrimaryCluster { request } = only_step(run(&spec, None, None, &[]))
        else {
            panic!("expected CreatePrimaryCluster");
        };
        assert_eq!(request.kms_key_id.as_deref(), Some("alias/acme-orders"));
    }

    #[test]
    fn primary_cluster_creating_waits_with_reason_creating() {
        let spec = acme("us-east-1");
        let c = cluster(&spec, ClusterStatus::Creating);
        assert_eq!(
            wait_reason(run(&spec, None, Some(&c), &[])),
            reason::CREATING
        );
    }

    #[test]
    fn available_primary_without_instances_creates_its_writer_in_slot_zero() {
        let spec = acme("us-east-1");
        let c = cluster(&spec, ClusterStatus::Available);
        let AuroraAction::CreateWriter { request } = only_step(run(&spec, None, Some(&c), &[]))
        else {
            panic!("expected CreateWriter");
        };
        assert_eq!(request.instance_id, "acme-us-east-1-0");
        assert_eq!(request.cluster_id, "acme-us-east-1");
        assert_eq!(request.class, "db.r6g.large");
    }

    #[test]
    fn primary_waits_for_its_writer_before_creating_the_global_cluster() {
        let spec = acme("us-east-1");
        let c = cluster(&spec, ClusterStatus::Available);
        let i = [instance(&spec, 0, InstanceStatus::Creating, false)];
        assert_eq!(
            wait_reason(run(&spec, None, Some(&c), &i)),
            reason::CREATING
        );
    }

    #[test]
    fn primary_with_an_available_writer_creates_the_global_cluster_from_itself() {
        let spec = acme("us-east-1");
        let c = cluster(&spec, ClusterStatus::Available);
        let i = [instance(&spec, 0, InstanceStatus::Available, true)];
        let AuroraAction::CreateGlobalClusterFrom { request } =
            only_step(run(&spec, None, Some(&c), &i))
        else {
            panic!("expected CreateGlobalClusterFrom");
        };
        assert_eq!(request.global_cluster_id, "acme-global");
        assert_eq!(request.source_cluster_arn, c.arn);
        assert_eq!(request.tags, ownership_tags(&spec));
        assert!(request.deletion_protection);
    }

    #[test]
    fn the_writer_region_turns_on_deletion_protection_of_an_unprotected_global_cluster() {
        let (spec, mut g, c, i) = converged_primary();
        g.deletion_protection = false;
        let step = only_step(run(&spec, Some(&g), Some(&c), &i));
        assert_eq!(
            step,
            AuroraAction::ModifyGlobalCluster {
                request: ModifyGlobalClusterRequest {
                    global_cluster_id: "acme-global".into(),
                    deletion_protection: Some(true),
                    engine_version: None,
                    allow_major_version_upgrade: false,
                }
            }
        );
        assert_eq!(step.reason(), reason::PROTECTING_GLOBAL_CLUSTER);
        assert_eq!(
            step.describe(),
            "turning deletion protection on of global cluster acme-global"
        );
    }

    #[test]
    fn secondaries_leave_global_deletion_protection_to_the_writer_region() {
        let spec = acme("eu-west-1");
        let mut g = global(
            GlobalClusterStatus::Available,
            Some("us-east-1"),
            &["eu-west-1"],
        );
        g.deletion_protection = false;
        let c = cluster(&spec, ClusterStatus::Available);
        let i = vec![
            instance(&spec, 0, InstanceStatus::Available, false),
            instance(&spec, 1, InstanceStatus::Available, false),
        ];
        assert_eq!(
            run(&spec, Some(&g), Some(&c), &i),
            AuroraPlan::Converged { notes: vec![] }
        );
    }

    #[test]
    fn global_deletion_protection_waits_until_the_global_cluster_is_available() {
        let (spec, mut g, c, i) = converged_primary();
        g.deletion_protection = false;
        g.status = GlobalClusterStatus::FailingOver;
        assert!(!matches!(
            run(&spec, Some(&g), Some(&c), &i),
            AuroraPlan::Steps(ref s) if matches!(s[0], AuroraAction::ModifyGlobalCluster { .. })
        ));
    }

    #[test]
    fn global_deletion_protection_comes_before_reader_scaling() {
        let (mut spec, mut g, c, i) = converged_primary();
        g.deletion_protection = false;
        spec.database.readers = 3;
        assert!(matches!(
            only_step(run(&spec, Some(&g), Some(&c), &i)),
            AuroraAction::ModifyGlobalCluster { .. }
        ));
    }

    #[test]
    fn other_regions_wait_for_primary_while_no_global_cluster_exists() {
        let spec = acme("eu-west-1");
        let AuroraAction::Wait {
            reason,
            message,
            poll,
        } = only_step(run(&spec, None, None, &[]))
        else {
            panic!("expected a wait");
        };
        assert_eq!(reason, reason::WAITING_FOR_PRIMARY);
        assert!(message.contains("us-east-1"), "{message}");
        assert_eq!(
            poll,
            requeue::LONG_OPERATION,
            "a primary takes minutes to create"
        );
    }

    #[test]
    fn other_regions_wait_for_primary_while_the_global_cluster_is_creating() {
        let spec = acme("eu-west-1");
        let g = global(GlobalClusterStatus::Creating, Some("us-east-1"), &[]);
        assert_eq!(
            wait_reason(run(&spec, Some(&g), None, &[])),
            reason::WAITING_FOR_PRIMARY
        );
    }

    #[test]
    fn secondary_is_created_without_master_credentials_in_the_global_cluster() {
        let spec = acme("eu-west-1");
        let g = global(GlobalClusterStatus::Available, Some("us-east-1"), &[]);
        let AuroraAction::CreateSecondaryCluster { request } =
            only_step(run(&spec, Some(&g), None, &[]))
        else {
            panic!("expected CreateSecondaryCluster");
        };
        assert_eq!(request.cluster_id, "acme-eu-west-1");
        assert_eq!(request.global_cluster_id.as_deref(), Some("acme-global"));
        assert_eq!(request.master_username, None);
        assert!(!request.manage_master_user_password);
        // The global cluster's exact version, so AWS accepts the member.
        assert_eq!(request.engine_version, "16.4");
        assert!(request.deletion_protection);
        assert!(request.storage_encrypted);
    }

    #[test]
    fn the_first_region_joins_as_secondary_when_another_region_is_writer() {
        let spec = acme("us-east-1");
        let g = global(GlobalClusterStatus::Available, Some("eu-west-1"), &[]);
        assert!(matches!(
            only_step(run(&spec, Some(&g), None, &[])),
            AuroraAction::CreateSecondaryCluster { .. }
        ));
    }

    #[test]
    fn the_first_region_creates_a_primary_inside_an_empty_global_cluster() {
        let spec = acme("us-east-1");
        let g = global(GlobalClusterStatus::Available, None, &[]);
        let AuroraAction::CreatePrimaryCluster { request } =
            only_step(run(&spec, Some(&g), None, &[]))
        else {
            panic!("expected CreatePrimaryCluster");
        };
        assert_eq!(request.global_cluster_id.as_deref(), Some("acme-global"));
        assert!(request.manage_master_user_password);
    }

    #[test]
    fn other_regions_wait_on_an_empty_global_cluster() {
        let spec = acme("eu-west-1");
        let g = global(GlobalClusterStatus::Available, None, &[]);
        assert_eq!(
            wait_reason(run(&spec, Some(&g), None, &[])),
            reason::WAITING_FOR_PRIMARY
        );
    }

    #[test]
    fn secondary_cluster_creating_waits_with_reason_joining() {
        let spec = acme("eu-west-1");
        let g = global(
            GlobalClusterStatus::Available,
            Some("us-east-1"),
            &["eu-west-1"],
        );
        let c = cluster(&spec, ClusterStatus::Creating);
        assert_eq!(
            wait_reason(run(&spec, Some(&g), Some(&c), &[])),
            reason::JOINING
        );
    }

    #[test]
    fn secondary_listed_by_its_cluster_but_not_yet_by_the_global_cluster_is_joining() {
        let spec = acme("eu-west-1");
        let g = global(GlobalClusterStatus::Available, Some("us-east-1"), &[]);
        let mut c = cluster(&spec, ClusterStatus::Creating);
        c.global_cluster_id = Some("acme-global".into());
        assert_eq!(
            wait_reason(run(&spec, Some(&g), Some(&c), &[])),
            reason::JOINING
        );
    }

    #[test]
    fn available_secondary_without_instances_creates_its_first_reader() {
        let spec = acme("eu-west-1");
        let g = global(
            GlobalClusterStatus::Available,
            Some("us-east-1"),
            &["eu-west-1"],
        );
        let c = cluster(&spec, ClusterStatus::Available);
        let AuroraAction::CreateReader { request } = only_step(run(&spec, Some(&g), Some(&c), &[]))
        else {
            panic!("expected CreateReader");
        };
        assert_eq!(request.instance_id, "acme-eu-west-1-0");
    }

    #[test]
    fn secondary_with_engine_of_another_major_is_a_terminal_spec_error() {
        let mut spec = acme("eu-west-1");
        spec.database.engine_version = "15".into();
        let g = global(GlobalClusterStatus::Available, Some("us-east-1"), &[]);
        let e = terminal(run(&spec, Some(&g), None, &[]));
        assert_eq!(e.reason, reason::ENGINE_MAJOR_VERSION_MISMATCH);
        assert_eq!(e.field, "spec.database.engineVersion");
    }

    #[test]
    fn secondary_with_another_engine_is_a_terminal_spec_error() {
        let mut spec = acme("eu-west-1");
        spec.database.engine = crate::api::AuroraEngine::AuroraMysql;
        spec.database.engine_version = "8.0".into();
        let g = global(GlobalClusterStatus::Available, Some("us-east-1"), &[]);
        assert_eq!(
            terminal(run(&spec, Some(&g), None, &[])).reason,
            reason::ENGINE_MISMATCH
        );
    }

    #[test]
    fn readers_are_added_one_at_a_time() {
        let (mut spec, g, c, i) = converged_primary();
        spec.database.readers = 3;
        let AuroraAction::CreateReader { request } = only_step(run(&spec, Some(&g), Some(&c), &i))
        else {
            panic!("expected CreateReader");
        };
        assert_eq!(request.instance_id, "acme-us-east-1-2");
    }

    #[test]
    fn readers_wait_while_an_instance_is_being_created() {
        let (mut spec, g, c, mut i) = converged_primary();
        spec.database.readers = 3;
        i.push(instance(&spec, 2, InstanceStatus::Creating, false));
        assert_eq!(
            wait_reason(run(&spec, Some(&g), Some(&c), &i)),
            reason::SCALING_READERS
        );
    }

    #[test]
    fn readers_are_removed_one_at_a_time_newest_first_never_the_writer() {
        let (mut spec, g, c, mut i) = converged_primary();
        i.push(instance(&spec, 2, InstanceStatus::Available, false));
        i.push(instance(&spec, 3, InstanceStatus::Available, false));
        spec.database.readers = 0;
        assert_eq!(
            only_step(run(&spec, Some(&g), Some(&c), &i)),
            AuroraAction::DeleteReader {
                instance_id: "acme-us-east-1-3".into()
            }
        );
        // The writer may sit in any slot after an in-region failover.
        let mut moved = i.clone();
        moved[0].is_writer = false;
        moved[3].is_writer = true;
        assert_eq!(
            only_step(run(&spec, Some(&g), Some(&c), &moved)),
            AuroraAction::DeleteReader {
                instance_id: "acme-us-east-1-2".into()
            }
        );
    }

    #[test]
    fn readers_wait_while_an_instance_is_being_deleted() {
        let (spec, g, c, mut i) = converged_primary();
        i.push(instance(&spec, 2, InstanceStatus::Deleting, false));
        assert_eq!(
            wait_reason(run(&spec, Some(&g), Some(&c), &i)),
            reason::SCALING_READERS
        );
    }

    #[test]
    fn a_reader_of_another_class_is_replaced_by_surge() {
        let (mut spec, g, c, i) = converged_primary();
        spec.database.instance_class = "db.r7g.xlarge".into();
        let AuroraAction::CreateReader { request } = only_step(run(&spec, Some(&g), Some(&c), &i))
        else {
            panic!("expected CreateReader");
        };
        assert_eq!(request.class, "db.r7g.xlarge");
        assert_eq!(request.instance_id, "acme-us-east-1-2");
        let mut surged = i.clone();
        let mut new = instance(&spec, 2, InstanceStatus::Available, false);
        new.class = "db.r7g.xlarge".into();
        surged.push(new);
        assert_eq!(
            only_step(run(&spec, Some(&g), Some(&c), &surged)),
            AuroraAction::DeleteReader {
                instance_id: "acme-us-east-1-1".into()
            }
        );
        let done = vec![surged[0].clone(), surged[2].clone()];
        let AuroraPlan::Converged { notes } = run(&spec, Some(&g), Some(&c), &done) else {
            panic!("expected converged");
        };
        assert!(
            notes[0].contains("writer instance acme-us-east-1-0 keeps class"),
            "{notes:?}"
        );
    }

    #[test]
    fn a_converged_region_plans_nothing() {
        let (spec, g, c, i) = converged_primary();
        assert_eq!(
            run(&spec, Some(&g), Some(&c), &i),
            AuroraPlan::Converged { notes: vec![] }
        );
    }

    #[test]
    fn a_converged_secondary_plans_nothing() {
        let spec = acme("eu-west-1");
        let g = global(
            GlobalClusterStatus::Available,
            Some("us-east-1"),
            &["eu-west-1"],
        );
        let c = cluster(&spec, ClusterStatus::Available);
        let i = vec![
            instance(&spec, 0, InstanceStatus::Available, false),
            instance(&spec, 1, InstanceStatus::Available, false),
        ];
        assert_eq!(
            run(&spec, Some(&g), Some(&c), &i),
            AuroraPlan::Converged { notes: vec![] }
        );
    }

    #[test]
    fn untagged_cluster_with_adopt_is_tagged_not_recreated() {
        let (mut spec, g, mut c, i) = converged_primary();
        spec.database.adopt = true;
        c.tags = Tags::from([("team".to_string(), "payments".to_string())]);
        assert_eq!(
            only_step(run(&spec, Some(&g), Some(&c), &i)),
            AuroraAction::TagForAdoption {
                resource_arn: c.arn.clone(),
                tags: ownership_tags(&spec)
            }
        );
    }

    #[test]
    fn untagged_cluster_without_adopt_requires_adoption() {
        let (spec, g, mut c, i) = converged_primary();
        c.tags.clear();
        let e = terminal(run(&spec, Some(&g), Some(&c), &i));
        assert_eq!(e.reason, reason::ADOPTION_REQUIRED);
        assert_eq!(e.field, "spec.database.adopt");
        assert!(e.message.contains("acme-us-east-1"));
    }

    #[test]
    fn a_cluster_tagged_for_another_shop_is_never_adopted() {
        let (mut spec, g, mut c, i) = converged_primary();
        spec.database.adopt = true;
        c.tags
            .insert(crate::cloud::tags::SHOP.into(), "globex".into());
        assert_eq!(
            terminal(run(&spec, Some(&g), Some(&c), &i)).reason,
            reason::OWNED_BY_ANOTHER_SHOP
        );
    }

    #[test]
    fn a_major_engine_version_matches_the_running_minor() {
        let (mut spec, g, c, i) = converged_primary();
        spec.database.engine_version = "16".into();
        assert_eq!(
            run(&spec, Some(&g), Some(&c), &i),
            AuroraPlan::Converged { notes: vec![] }
        );
        spec.database.engine_version = "16.4".into();
        assert_eq!(
            run(&spec, Some(&g), Some(&c), &i),
            AuroraPlan::Converged { notes: vec![] }
        );
    }

    #[test]
    fn a_newer_full_engine_version_modifies_the_cluster() {
        let (mut spec, g, c, i) = converged_primary();
        spec.database.engine_version = "16.6".into();
        assert_eq!(
            only_step(run(&spec, Some(&g), Some(&c), &i)),
            AuroraAction::ModifyCluster {
                request: ModifyClusterRequest {
                    cluster_id: "acme-us-east-1".into(),
                    engine_version: Some("16.6".into()),
                    deletion_protection: None,
                }
            }
        );
    }

    #[test]
    fn an_engine_upgrade_waits_while_the_global_cluster_is_failing_over() {
        let (mut spec, mut g, c, i) = converged_primary();
        spec.database.engine_version = "16.6".into();
        g.status = GlobalClusterStatus::FailingOver;
        assert_eq!(
            wait_reason(run(&spec, Some(&g), Some(&c), &i)),
            reason::UPGRADING
        );
    }

    #[test]
    fn an_older_full_engine_version_is_accepted_not_a_diff() {
        let (mut spec, g, c, i) = converged_primary();
        spec.database.engine_version = "16.2".into();
        let AuroraPlan::Converged { notes } = run(&spec, Some(&g), Some(&c), &i) else {
            panic!("expected converged");
        };
        assert!(notes[0].contains("newer than the requested 16.2"));
    }

    #[test]
    fn aws_filled_defaults_are_not_diffs() {
        // AWS reports the key as an ARN even when none (or an alias) was
        // requested, and fills endpoints and timestamps: none of it is a diff.
        let (mut spec, g, mut c, i) = converged_primary();
        spec.database.kms_key_id = Some("alias/acme-orders".into());
        c.kms_key_id = Some("arn:aws:kms:us-east-1:123456789012:key/1234abcd".into());
        c.created_at = Some(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        c.members = vec!["acme-us-east-1-0".into()];
        assert_eq!(
            run(&spec, Some(&g), Some(&c), &i),
            AuroraPlan::Converged { notes: vec![] }
        );
    }

    #[test]
    fn transient_cluster_states_wait_and_are_never_terminal() {
        let (spec, g, mut c, i) = converged_primary();
        for (status, expected) in [
            (ClusterStatus::Modifying, reason::CLUSTER_BUSY),
            (ClusterStatus::BackingUp, reason::CLUSTER_BUSY),
            (ClusterStatus::Upgrading, reason::UPGRADING),
            (ClusterStatus::Deleting, reason::DELETING),
            (
                ClusterStatus::InaccessibleEncryptionCredentials,
                reason::CLUSTER_UNHEALTHY,
            ),
        ] {
            c.status = status.clone();
            assert_eq!(
                wait_reason(run(&spec, Some(&g), Some(&c), &i)),
                expected,
                "{status}"
            );
        }
    }

    #[test]
    fn a_busy_instance_waits() {
        let (spec, g, c, mut i) = converged_primary();
        i[1].status = InstanceStatus::Modifying;
        assert_eq!(
            wait_reason(run(&spec, Some(&g), Some(&c), &i)),
            reason::CLUSTER_BUSY
        );
    }

    #[test]
    fn a_kms_key_of_another_region_is_a_terminal_spec_error() {
        let mut spec = acme("eu-west-1");
        spec.database.kms_key_id = Some("arn:aws:kms:us-east-1:123456789012:key/abc".into());
        let e = terminal(run(&spec, None, None, &[]));
        assert_eq!(e.reason, reason::KMS_KEY_IN_ANOTHER_REGION);
        assert_eq!(e.field, "spec.database.kmsKeyId");
    }

    #[test]
    fn an_unencrypted_cluster_with_a_kms_key_in_the_spec_is_a_terminal_spec_error() {
        let (mut spec, g, mut c, i) = converged_primary();
        spec.database.kms_key_id = Some("alias/acme".into());
        c.storage_encrypted = false;
        assert_eq!(
            terminal(run(&spec, Some(&g), Some(&c), &i)).reason,
            reason::CLUSTER_NOT_ENCRYPTED
        );
    }

    #[test]
    fn a_standalone_cluster_beside_an_existing_global_cluster_is_a_terminal_error() {
        let spec = acme("eu-west-1");
        let g = global(GlobalClusterStatus::Available, Some("us-east-1"), &[]);
        let c = cluster(&spec, ClusterStatus::Available);
        let e = terminal(run(&spec, Some(&g), Some(&c), &[]));
        assert_eq!(e.reason, reason::CLUSTER_OUTSIDE_GLOBAL_CLUSTER);
    }

    #[test]
    fn a_cluster_in_another_global_cluster_is_a_terminal_error() {
        let spec = acme("eu-west-1");
        let mut c = cluster(&spec, ClusterStatus::Available);
        c.global_cluster_id = Some("legacy-global".into());
        assert_eq!(
            terminal(run(&spec, None, Some(&c), &[])).reason,
            reason::CLUSTER_IN_ANOTHER_GLOBAL_CLUSTER
        );
    }

    #[test]
    fn a_standalone_cluster_in_a_later_region_waits_for_primary() {
        let spec = acme("eu-west-1");
        let c = cluster(&spec, ClusterStatus::Available);
        assert_eq!(
            wait_reason(run(&spec, None, Some(&c), &[])),
            reason::WAITING_FOR_PRIMARY
        );
    }

    #[test]
    fn a_cluster_of_another_engine_is_a_terminal_error() {
        let (spec, g, mut c, i) = converged_primary();
        c.engine = "aurora-mysql".into();
        assert_eq!(
            terminal(run(&spec, Some(&g), Some(&c), &i)).reason,
            reason::ENGINE_MISMATCH
        );
    }
}
