//! The cache plan: a pure function from the spec and what AWS shows to the
//! next step for this region's replication group in the shop's Global
//! Datastore.
//!
//! One step per pass: a call is issued, the reconcile requeues, and the next
//! pass sees its effect. Long AWS operations are never awaited; a resource
//! that is not `available` yields a `Wait`, never an error. Only the fields
//! the user sets are compared (node type, shards, replicas, encryption,
//! AUTH), normalised, so that nothing AWS fills in can become a diff.

use std::time::Duration;

use crate::api::{AuthTokenStatus, ShopRegionSpec, SpecError};
use crate::cloud::arn_region;
use crate::cloud::executor::{CloudPlan, Step};
use crate::cloud::requeue;
use crate::cloud::tags::tags_to_add;

use super::auth::{CacheAuth, Rotation, fingerprint, next_rotation};
use super::names::{
    Ownership, check_global_node_type, engine_version_satisfied, global_suffix,
    normalise_node_type, ownership, replication_group_id, resource_tags, suffix_of,
};
use super::port::{
    AuthToken, AuthTokenUpdateStrategy, CreateGlobalReplicationGroupRequest,
    CreateReplicationGroupRequest, GlobalMemberStatus, GlobalReplicationGroup,
    GlobalReplicationGroupMember, GlobalReplicationGroupStatus, ModifyReplicationGroupRequest,
    ReplicationGroup, ReplicationGroupStatus, Tags,
};

/// A Global Datastore holds one primary and at most two secondaries.
pub const MAX_GLOBAL_DATASTORE_REGIONS: usize = 3;

/// The engine shopfleet creates. AWS's default version of it (Redis OSS 7.x
/// today) is newer than 5.0.6, the oldest a Global Datastore accepts.
pub const ENGINE: &str = "redis";

/// Condition reasons for `CacheReady`, and the spec-error reasons of the
/// cache concern.
pub mod reason {
    pub use crate::cloud::elasticache::auth::reason::*;
    pub use crate::cloud::reason::*;

    pub const CREATING_GLOBAL_DATASTORE: &str = "CreatingGlobalDatastore";
    pub const SCALING_REPLICAS: &str = "ScalingReplicas";
    pub const CONFIGURING_FAILOVER: &str = "ConfiguringFailover";
    pub const REPLICATION_GROUP_BUSY: &str = "ReplicationGroupBusy";
    pub const REPLICATION_GROUP_UNHEALTHY: &str = "ReplicationGroupUnhealthy";
    pub const GLOBAL_DATASTORE_BUSY: &str = "GlobalDatastoreBusy";

    // Terminal: the spec (or a resource in the way) must change.
    pub const OWNED_BY_ANOTHER_SHOP: &str = "ReplicationGroupOwnedByAnotherShop";
    pub const UNSUPPORTED_NODE_TYPE: &str = "UnsupportedNodeType";
    pub const TOO_MANY_REGIONS: &str = "TooManyRegionsForGlobalDatastore";
    pub const NODE_TYPE_MISMATCH: &str = "NodeTypeMismatch";
    pub const SHARD_COUNT_MISMATCH: &str = "ShardCountMismatch";
    pub const ENCRYPTION_MISMATCH: &str = "EncryptionMismatch";
    pub const AUTH_MISMATCH: &str = "AuthMismatch";
    pub const OUTSIDE_GLOBAL_DATASTORE: &str = "ReplicationGroupOutsideGlobalDatastore";
    pub const IN_ANOTHER_GLOBAL_DATASTORE: &str = "ReplicationGroupInAnotherGlobalDatastore";
    pub const ANOTHER_MEMBER_IN_REGION: &str = "AnotherMemberInRegion";
    pub const KMS_KEY_IN_ANOTHER_REGION: &str = "KmsKeyInAnotherRegion";

    // Not terminal.
    pub const UPDATING_TAGS: &str = "UpdatingTags";
    pub const RECONFIGURING: &str = "Reconfiguring";
}

/// What the plan looks at. The region is `spec.region`.
#[derive(Clone, Copy, Debug)]
pub struct CachePlanInput<'a> {
    pub spec: &'a ShopRegionSpec,
    pub auth: &'a CacheAuth,
    /// The shop's Global Datastore (found by suffix), if it exists.
    pub global: Option<&'a GlobalReplicationGroup>,
    /// This region's replication group (deterministic identifier).
    pub replication_group: Option<&'a ReplicationGroup>,
    /// The replication group's tags; empty when it does not exist.
    pub tags: &'a Tags,
    /// The security groups the group's nodes are in; `None` when not read.
    pub security_groups: Option<&'a [String]>,
    /// The AUTH token rotation as status recorded it.
    pub recorded_auth: Option<&'a AuthTokenStatus>,
    /// The AUTH token fingerprint every order pod runs with.
    pub rolled_auth: Option<&'a str>,
}

/// What the plan says for this region's replication group.
pub type CachePlan = CloudPlan<CacheAction>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheAction {
    CreatePrimaryReplicationGroup {
        request: CreateReplicationGroupRequest,
    },
    CreateGlobalDatastore {
        request: CreateGlobalReplicationGroupRequest,
    },
    CreateSecondaryReplicationGroup {
        request: CreateReplicationGroupRequest,
    },
    /// `IncreaseReplicaCount` or `DecreaseReplicaCount`, one replica per
    /// shard at a time.
    ChangeReplicas {
        replication_group_id: String,
        from: u8,
        to: u8,
    },
    /// Multi-AZ with automatic failover on (one replica or more) or off
    /// (AWS refuses it without a replica to fail over to).
    ConfigureFailover {
        request: ModifyReplicationGroupRequest,
    },
    TagForAdoption {
        resource_arn: String,
        tags: Tags,
    },
    /// Tags of `spec.tags` the group lacks or holds with another value.
    UpdateTags {
        resource_arn: String,
        tags: Tags,
    },
    /// `ModifyReplicationGroup` with the spec's security groups.
    ReconfigureSecurityGroups {
        request: ModifyReplicationGroupRequest,
    },
    /// A step of an AUTH token rotation; `then` is what status records
    /// once AWS took it.
    UpdateAuthToken {
        request: ModifyReplicationGroupRequest,
        then: AuthTokenStatus,
    },
    /// Nothing to do until AWS finishes something, another region acts, or
    /// the user supplies the AUTH token.
    Wait {
        reason: &'static str,
        message: String,
        /// When to look again.
        poll: Duration,
    },
}

impl Step for CacheAction {
    /// The `CacheReady` reason while this step is under way.
    fn reason(&self) -> &str {
        match self {
            Self::CreatePrimaryReplicationGroup { .. } => reason::CREATING,
            Self::CreateGlobalDatastore { .. } => reason::CREATING_GLOBAL_DATASTORE,
            Self::CreateSecondaryReplicationGroup { .. } => reason::JOINING,
            Self::ChangeReplicas { .. } => reason::SCALING_REPLICAS,
            Self::ConfigureFailover { .. } => reason::CONFIGURING_FAILOVER,
            Self::TagForAdoption { .. } => reason::ADOPTING,
            Self::UpdateTags { .. } => reason::UPDATING_TAGS,
            Self::UpdateAuthToken { .. } => reason::ROTATING_AUTH_TOKEN,
            Self::ReconfigureSecurityGroups { .. } => reason::RECONFIGURING,
            Self::Wait { reason, .. } => reason,
        }
    }

    /// One line for conditions and events. Never includes the AUTH token.
    fn describe(&self) -> String {
        match self {
            Self::CreatePrimaryReplicationGroup { request } => format!(
                "creating primary replication group {} ({}, {} shard(s), {} replica(s) per shard{})",
                request.replication_group_id,
                request.cache_node_type.as_deref().unwrap_or("?"),
                request.num_node_groups.unwrap_or(1),
                request.replicas_per_node_group,
                if request.auth_token.is_some() {
                    ", Redis AUTH"
                } else {
                    ""
                }
            ),
            Self::CreateGlobalDatastore { request } => format!(
                "creating Global Datastore <prefix>-{} from {}",
                request.suffix, request.primary_replication_group_id
            ),
            Self::CreateSecondaryReplicationGroup { request } => format!(
                "creating secondary replication group {} in Global Datastore {}",
                request.replication_group_id,
                request
                    .global_replication_group_id
                    .as_deref()
                    .unwrap_or("?")
            ),
            Self::ChangeReplicas {
                replication_group_id,
                from,
                to,
            } => format!(
                "changing the replicas per shard of {replication_group_id} from {from} to {to}"
            ),
            Self::ConfigureFailover { request } => format!(
                "turning Multi-AZ with automatic failover {} for {}",
                if request.automatic_failover_enabled == Some(true) {
                    "on"
                } else {
                    "off"
                },
                request.replication_group_id
            ),
            Self::TagForAdoption { resource_arn, .. } => format!("adopting {resource_arn}"),
            Self::UpdateTags { resource_arn, tags } => format!(
                "tagging {resource_arn} with {}",
                tags.keys().collect::<Vec<_>>().join(", ")
            ),
            Self::ReconfigureSecurityGroups { request } => format!(
                "changing the security groups of {} to {}",
                request.replication_group_id,
                request
                    .security_group_ids
                    .clone()
                    .unwrap_or_default()
                    .join(", ")
            ),
            Self::UpdateAuthToken { request, then } => match &request.auth_token {
                Some((_, AuthTokenUpdateStrategy::Set)) => format!(
                    "retiring the previous Redis AUTH token of {}: every order pod runs with the new one ({})",
                    request.replication_group_id,
                    then.applied.as_deref().unwrap_or("?")
                ),
                _ => format!(
                    "adding the new Redis AUTH token ({}) to {} beside the previous one, which stays valid until every order pod runs with the new one",
                    then.rotating_to.as_deref().unwrap_or("?"),
                    request.replication_group_id
                ),
            },
            Self::Wait { message, .. } => message.clone(),
        }
    }

    fn event_reason(&self) -> Option<&'static str> {
        Some(match self {
            Self::CreatePrimaryReplicationGroup { .. } => "CreatingPrimaryReplicationGroup",
            Self::CreateGlobalDatastore { .. } => "CreatingGlobalDatastore",
            Self::CreateSecondaryReplicationGroup { .. } => "JoiningGlobalDatastore",
            Self::ChangeReplicas { from, to, .. } if to > from => "AddingCacheReplica",
            Self::ChangeReplicas { .. } => "RemovingCacheReplica",
            Self::ConfigureFailover { .. } => "ConfiguringCacheFailover",
            Self::TagForAdoption { .. } => "AdoptingReplicationGroup",
            Self::UpdateTags { .. } => "UpdatingTags",
            Self::ReconfigureSecurityGroups { .. } => "ReconfiguringReplicationGroup",
            Self::UpdateAuthToken { request, .. } => match &request.auth_token {
                Some((_, AuthTokenUpdateStrategy::Set)) => "AuthTokenSet",
                _ => "AuthTokenRotating",
            },
            Self::Wait { .. } => return None,
        })
    }

    fn creates(&self) -> bool {
        matches!(
            self,
            Self::CreatePrimaryReplicationGroup { .. }
                | Self::CreateSecondaryReplicationGroup { .. }
                | Self::CreateGlobalDatastore { .. }
        )
    }

    fn refused_field(&self) -> Option<&'static str> {
        match self {
            Self::CreatePrimaryReplicationGroup { .. }
            | Self::CreateSecondaryReplicationGroup { .. } => Some("spec.cache"),
            Self::CreateGlobalDatastore { .. } => Some("spec.cache.globalReplicationGroupSuffix"),
            Self::ChangeReplicas { .. } => Some("spec.cache.replicasPerShard"),
            Self::UpdateTags { .. } => Some("spec.tags"),
            Self::UpdateAuthToken { .. } => Some("spec.cache.authSecretRef"),
            Self::ReconfigureSecurityGroups { .. } => Some("spec.cache.network.securityGroupIds"),
            Self::ConfigureFailover { .. } | Self::TagForAdoption { .. } | Self::Wait { .. } => {
                None
            }
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

pub fn plan(input: &CachePlanInput) -> CachePlan {
    if let Some(error) = check_spec(input.spec) {
        return CachePlan::Terminal(error);
    }
    match input.replication_group {
        None => plan_without_group(input),
        Some(group) => plan_with_group(input, group),
    }
}

fn is_first_in_order(spec: &ShopRegionSpec) -> bool {
    spec.failover.order.first() == Some(&spec.region)
}

fn first_region(spec: &ShopRegionSpec) -> &str {
    spec.failover
        .order
        .first()
        .map(String::as_str)
        .unwrap_or("?")
}

fn spec_error(reason: &'static str, field: &str, message: impl Into<String>) -> CachePlan {
    CachePlan::Terminal(SpecError {
        reason,
        field: field.to_string(),
        message: message.into(),
    })
}

/// A wait: nothing to call now; look again after `poll`, which the plan
/// chooses with the reason (minutes for AWS's long operations, longer for a
/// state only a human or AWS can mend).
fn wait(reason: &'static str, poll: Duration, message: impl Into<String>) -> CachePlan {
    CachePlan::Steps(vec![CacheAction::Wait {
        reason,
        message: message.into(),
        poll,
    }])
}

fn step(action: CacheAction) -> CachePlan {
    CachePlan::Steps(vec![action])
}

/// Mistakes AWS would only report after something was created.
fn check_spec(spec: &ShopRegionSpec) -> Option<SpecError> {
    if let Some(key) = spec.cache.kms_key_id.as_deref()
        && let Some(key_region) = arn_region(key)
        && key_region != spec.region
    {
        return Some(SpecError {
            reason: reason::KMS_KEY_IN_ANOTHER_REGION,
            field: "spec.cache.kmsKeyId".into(),
            message: format!(
                "KMS key {key} is in {key_region}; the replication group in {} needs a key of its own region",
                spec.region
            ),
        });
    }
    if let Err(why) = check_global_node_type(&spec.cache.node_type) {
        return Some(SpecError {
            reason: reason::UNSUPPORTED_NODE_TYPE,
            field: "spec.cache.nodeType".into(),
            message: why,
        });
    }
    let position = spec.failover.order.iter().position(|r| r == &spec.region)?;
    (position >= MAX_GLOBAL_DATASTORE_REGIONS).then(|| SpecError {
        reason: reason::TOO_MANY_REGIONS,
        field: "spec.failover.order".into(),
        message: format!(
            "a Global Datastore spans at most {MAX_GLOBAL_DATASTORE_REGIONS} regions (a primary and two secondaries); {} is number {} in failover.order",
            spec.region,
            position + 1
        ),
    })
}

/// What a replication group (or the Global Datastore it would join) is, in
/// the terms the user sets.
struct Shape<'a> {
    what: String,
    node_type: &'a str,
    shards: usize,
    transit: bool,
    at_rest: bool,
    auth: bool,
}

/// The first field where `shape` differs from the spec. None of these can be
/// changed in place by shopfleet (a Global Datastore is scaled and
/// re-encrypted as a whole, at-rest encryption never), so each is terminal.
fn check_shape(spec: &ShopRegionSpec, shape: &Shape) -> Option<CachePlan> {
    let cache = &spec.cache;
    let what = &shape.what;
    if normalise_node_type(&cache.node_type) != normalise_node_type(shape.node_type) {
        return Some(spec_error(
            reason::NODE_TYPE_MISMATCH,
            "spec.cache.nodeType",
            format!(
                "{what} runs {}, the spec asks for {}; every member of a Global Datastore has the primary's node type, and scaling a Global Datastore is not automated",
                shape.node_type, cache.node_type
            ),
        ));
    }
    if usize::from(cache.shards) != shape.shards {
        return Some(spec_error(
            reason::SHARD_COUNT_MISMATCH,
            "spec.cache.shards",
            format!(
                "{what} has {} shard(s), the spec asks for {}; every member of a Global Datastore has the primary's shards, and resharding is not automated",
                shape.shards, cache.shards
            ),
        ));
    }
    for (field, wanted, actual, name) in [
        (
            "spec.cache.transitEncryption",
            cache.transit_encryption,
            shape.transit,
            "in-transit",
        ),
        (
            "spec.cache.atRestEncryption",
            cache.at_rest_encryption,
            shape.at_rest,
            "at-rest",
        ),
    ] {
        if wanted != actual {
            return Some(spec_error(
                reason::ENCRYPTION_MISMATCH,
                field,
                format!(
                    "{what} has {name} encryption {}, the spec asks for it {}; encryption is set when a replication group is created and must match across a Global Datastore",
                    on_off(actual),
                    on_off(wanted)
                ),
            ));
        }
    }
    let wanted_auth = cache.auth_secret_ref.is_some();
    if wanted_auth != shape.auth {
        return Some(spec_error(
            reason::AUTH_MISMATCH,
            "spec.cache.authSecretRef",
            format!(
                "{what} has Redis AUTH {}, the spec asks for it {}; AUTH must match across a Global Datastore and changing it is not automated",
                on_off(shape.auth),
                on_off(wanted_auth)
            ),
        ));
    }
    None
}

fn on_off(value: bool) -> &'static str {
    if value { "on" } else { "off" }
}

fn global_shape(global: &GlobalReplicationGroup) -> Shape<'_> {
    Shape {
        what: format!("Global Datastore {}", global.id),
        node_type: &global.cache_node_type,
        shards: usize::from(global.num_node_groups),
        transit: global.transit_encryption_enabled,
        at_rest: global.at_rest_encryption_enabled,
        auth: global.auth_token_enabled,
    }
}

fn group_shape(group: &ReplicationGroup) -> Shape<'_> {
    Shape {
        what: format!("replication group {}", group.id),
        node_type: &group.cache_node_type,
        shards: group.node_groups.len(),
        transit: group.transit_encryption_enabled,
        at_rest: group.at_rest_encryption_enabled,
        auth: group.auth_token_enabled,
    }
}

/// The AUTH token a create needs, or the wait that says why it is missing.
fn auth_token(input: &CachePlanInput) -> Result<Option<AuthToken>, CachePlan> {
    if input.spec.cache.auth_secret_ref.is_none() {
        return Ok(None);
    }
    match input.auth {
        CacheAuth::Token(token) => Ok(Some(token.clone())),
        CacheAuth::Unavailable { reason, message } => {
            Err(wait(reason, requeue::AUTH_UNAVAILABLE, message.clone()))
        }
        CacheAuth::Disabled => Err(wait(
            reason::AUTH_SECRET_MISSING,
            requeue::AUTH_UNAVAILABLE,
            "spec.cache.authSecretRef is set but no AUTH token was read",
        )),
    }
}

fn description(spec: &ShopRegionSpec) -> String {
    format!("shopfleet: shop {} in {}", spec.shop, spec.region)
}

fn create_request(
    spec: &ShopRegionSpec,
    auth_token: Option<AuthToken>,
    global: Option<&GlobalReplicationGroup>,
) -> CreateReplicationGroupRequest {
    let cache = &spec.cache;
    let failover = cache.replicas_per_shard >= 1;
    // A secondary inherits engine, version, node type, shards, parameter
    // group, encryption, Multi-AZ and automatic failover from the primary
    // (AWS's guide: "do not pass in values for these parameters"); what is
    // regional (subnet group, security groups, KMS key, AUTH token) is its
    // own.
    let primary = global.is_none();
    let network = cache.network.as_ref();
    CreateReplicationGroupRequest {
        replication_group_id: replication_group_id(spec),
        description: description(spec),
        global_replication_group_id: global.map(|g| g.id.clone()),
        engine: primary.then(|| ENGINE.to_string()),
        engine_version: cache.engine_version.clone().filter(|_| primary),
        cache_node_type: primary.then(|| normalise_node_type(&cache.node_type)),
        num_node_groups: primary.then_some(cache.shards),
        cluster_mode_enabled: primary.then_some(cache.shards > 1),
        replicas_per_node_group: cache.replicas_per_shard,
        automatic_failover_enabled: primary.then_some(failover),
        multi_az_enabled: primary.then_some(failover),
        transit_encryption_enabled: primary.then_some(cache.transit_encryption),
        at_rest_encryption_enabled: primary.then_some(cache.at_rest_encryption),
        auth_token,
        tags: resource_tags(spec),
        cache_subnet_group_name: network.map(|n| n.subnet_group_name.clone()),
        security_group_ids: network
            .map(|n| {
                let mut ids = n.security_group_ids.clone();
                ids.sort();
                ids.dedup();
                ids
            })
            .unwrap_or_default(),
        cache_parameter_group_name: cache.parameter_group_name.clone().filter(|_| primary),
        kms_key_id: cache
            .kms_key_id
            .clone()
            .filter(|_| cache.at_rest_encryption),
    }
}

fn plan_without_group(input: &CachePlanInput) -> CachePlan {
    let spec = input.spec;
    let suffix = global_suffix(spec);
    let Some(global) = input.global else {
        // Both paths end in a create that needs the token: say what is
        // missing now, while the user can fix it before the primary exists.
        let token = match auth_token(input) {
            Ok(token) => token,
            Err(wait) => return wait,
        };
        if is_first_in_order(spec) {
            return step(CacheAction::CreatePrimaryReplicationGroup {
                request: create_request(spec, token, None),
            });
        }
        return wait(
            reason::WAITING_FOR_PRIMARY,
            requeue::LONG_OPERATION,
            format!(
                "waiting for {} to create Global Datastore <prefix>-{suffix}",
                first_region(spec)
            ),
        );
    };
    if let Some(error) = check_shape(spec, &global_shape(global)) {
        return error;
    }
    let id = replication_group_id(spec);
    if let Some(member) = global.member_in(&spec.region) {
        if member.replication_group_id == id {
            // Listed by the Global Datastore, not yet described in the
            // region: AWS is still creating it.
            return wait(
                reason::JOINING,
                requeue::LONG_OPERATION,
                format!("replication group {id} is joining {}", global.id),
            );
        }
        if member.status != GlobalMemberStatus::Disassociating {
            return spec_error(
                reason::ANOTHER_MEMBER_IN_REGION,
                "spec.region",
                format!(
                    "Global Datastore {} already has member {} in {}; a Global Datastore holds one replication group per region",
                    global.id, member.replication_group_id, spec.region
                ),
            );
        }
    }
    // A spec that can never join (above) says so before a missing token.
    let token = match auth_token(input) {
        Ok(token) => token,
        Err(wait) => return wait,
    };
    if !global.status.is_settled() || global.primary().is_none() {
        return wait(
            reason::WAITING_FOR_PRIMARY,
            requeue::LONG_OPERATION,
            format!("Global Datastore {} is {}", global.id, global.status),
        );
    }
    step(CacheAction::CreateSecondaryReplicationGroup {
        request: create_request(spec, token, Some(global)),
    })
}

fn plan_with_group(input: &CachePlanInput, group: &ReplicationGroup) -> CachePlan {
    let spec = input.spec;
    let suffix = global_suffix(spec);

    match ownership(input.tags, spec) {
        Ownership::Ours => {}
        Ownership::OtherShop(shop) => {
            return spec_error(
                reason::OWNED_BY_ANOTHER_SHOP,
                "spec.shop",
                format!(
                    "replication group {} is tagged for shop {shop}; shopfleet will not take it over",
                    group.id
                ),
            );
        }
        Ownership::Untagged if !spec.cache.adopt => {
            return spec_error(
                reason::ADOPTION_REQUIRED,
                "spec.cache.adopt",
                format!(
                    "replication group {} already exists and was not created by shopfleet; set spec.cache.adopt: true to manage it",
                    group.id
                ),
            );
        }
        Ownership::Untagged => {
            return step(CacheAction::TagForAdoption {
                resource_arn: group.arn.clone(),
                tags: resource_tags(spec),
            });
        }
    }

    let global = input.global;
    let listed = global.and_then(|g| {
        g.members
            .iter()
            .find(|m| m.region == spec.region && m.replication_group_id == group.id)
    });
    match (&group.global_replication_group, global) {
        (Some(info), Some(g)) if info.global_replication_group_id != g.id => {
            return in_another_global(group, &info.global_replication_group_id, &suffix);
        }
        (Some(_), Some(g)) if listed.is_none() => {
            // The group names the Global Datastore but the member list does
            // not show it yet: AWS is still associating it.
            return wait(
                reason::JOINING,
                requeue::LONG_OPERATION,
                format!("replication group {} is joining {}", group.id, g.id),
            );
        }
        (Some(info), None) => {
            if suffix_of(&info.global_replication_group_id) == Some(suffix.as_str()) {
                return wait(
                    reason::WAITING_FOR_PRIMARY,
                    requeue::LONG_OPERATION,
                    format!(
                        "Global Datastore {} is not visible yet",
                        info.global_replication_group_id
                    ),
                );
            }
            return in_another_global(group, &info.global_replication_group_id, &suffix);
        }
        (None, Some(g)) if listed.is_none() => {
            return spec_error(
                reason::OUTSIDE_GLOBAL_DATASTORE,
                "spec.cache.globalReplicationGroupSuffix",
                format!(
                    "replication group {} exists outside Global Datastore {}, and AWS cannot add an existing replication group to a Global Datastore; \
                     delete it (a secondary is recreated empty and replicates) or name the Global Datastore it belongs to",
                    group.id, g.id
                ),
            );
        }
        (None, None) if !is_first_in_order(spec) => {
            return wait(
                reason::WAITING_FOR_PRIMARY,
                requeue::LONG_OPERATION,
                format!(
                    "waiting for {} to create Global Datastore <prefix>-{suffix}",
                    first_region(spec)
                ),
            );
        }
        _ => {}
    }
    // A member's role comes from AWS; a standalone group is the primary to
    // be (only the first region in the order gets this far without a Global
    // Datastore).
    let primary = listed.is_none_or(|m| m.is_primary);

    if group.status != ReplicationGroupStatus::Available {
        return wait_for_group_state(group, primary);
    }
    if let Some(member) = listed
        && let Some(plan) = wait_for_membership(group, member)
    {
        return plan;
    }
    if let Some(error) = check_shape(spec, &group_shape(group)) {
        return error;
    }
    let Some(global) = global else {
        return step(CacheAction::CreateGlobalDatastore {
            request: CreateGlobalReplicationGroupRequest {
                suffix,
                description: format!("shopfleet: Global Datastore of shop {}", spec.shop),
                primary_replication_group_id: group.id.clone(),
                tags: resource_tags(spec),
            },
        });
    };
    if global.status == GlobalReplicationGroupStatus::Creating {
        return wait(
            reason::CREATING_GLOBAL_DATASTORE,
            requeue::LONG_OPERATION,
            format!("Global Datastore {} is creating", global.id),
        );
    }
    let settled = global.status.is_settled();
    if let Some(action) = plan_replicas(spec, group) {
        if !settled {
            return wait(
                reason::GLOBAL_DATASTORE_BUSY,
                requeue::SHORT_OPERATION,
                format!(
                    "{} waits for Global Datastore {} ({})",
                    action.describe(),
                    global.id,
                    global.status
                ),
            );
        }
        return step(action);
    }
    if let Some(plan) = plan_auth_token(input, group) {
        return plan;
    }
    if let Some(plan) = plan_security_groups(input, group) {
        return plan;
    }
    let missing_tags = tags_to_add(spec, input.tags);
    if !missing_tags.is_empty() {
        return step(CacheAction::UpdateTags {
            resource_arn: group.arn.clone(),
            tags: missing_tags,
        });
    }
    let mut notes = Vec::new();
    if !settled {
        notes.push(format!(
            "Global Datastore {} is {}",
            global.id, global.status
        ));
    }
    if let Some(to) = input.recorded_auth.and_then(|a| a.rotating_to.as_deref()) {
        notes.push(format!(
            "the Redis AUTH token rotation to {to} waits for every order pod to run with it; both tokens are valid until then"
        ));
    }
    if let Some(wanted) = &spec.cache.engine_version
        && !engine_version_satisfied(wanted, &global.engine_version)
    {
        notes.push(format!(
            "Global Datastore {} runs Redis {}, the spec asks for {wanted}; shopfleet does not upgrade a Global Datastore's engine (ModifyGlobalReplicationGroup, by hand)",
            global.id, global.engine_version
        ));
    }
    CachePlan::Converged { notes }
}

/// The nodes' security groups, changed in place (`ApplyImmediately`) when
/// the spec names others.
fn plan_security_groups(input: &CachePlanInput, group: &ReplicationGroup) -> Option<CachePlan> {
    let current = input.security_groups?;
    let mut wanted = input
        .spec
        .cache
        .network
        .as_ref()?
        .security_group_ids
        .clone();
    wanted.sort();
    wanted.dedup();
    (wanted != current).then(|| {
        step(CacheAction::ReconfigureSecurityGroups {
            request: ModifyReplicationGroupRequest {
                replication_group_id: group.id.clone(),
                security_group_ids: Some(wanted),
                ..ModifyReplicationGroupRequest::default()
            },
        })
    })
}

/// The AUTH token of a running group: rotated when the Secret's value
/// changes, ROTATE first (old and new both valid), SET once every order pod
/// runs with the new one. A Secret that cannot be read changes nothing: the
/// group keeps the token it has and the condition says what is wrong.
fn plan_auth_token(input: &CachePlanInput, group: &ReplicationGroup) -> Option<CachePlan> {
    if !group.auth_token_enabled {
        return None;
    }
    let token = match input.auth {
        CacheAuth::Disabled => return None,
        CacheAuth::Unavailable { reason, message } => {
            return Some(wait(
                reason,
                requeue::AUTH_UNAVAILABLE,
                format!(
                    "{message}; replication group {} keeps its current token",
                    group.id
                ),
            ));
        }
        CacheAuth::Token(token) => token,
    };
    let desired = fingerprint(&group.id, token);
    match next_rotation(&desired, input.recorded_auth, input.rolled_auth) {
        Rotation::Settled(_) | Rotation::WaitingForPods(_) => None,
        Rotation::Call { call, then } => Some(step(CacheAction::UpdateAuthToken {
            request: ModifyReplicationGroupRequest {
                replication_group_id: group.id.clone(),
                auth_token: Some((token.clone(), call)),
                ..ModifyReplicationGroupRequest::default()
            },
            then,
        })),
    }
}

fn in_another_global(group: &ReplicationGroup, other: &str, suffix: &str) -> CachePlan {
    spec_error(
        reason::IN_ANOTHER_GLOBAL_DATASTORE,
        "spec.cache.globalReplicationGroupSuffix",
        format!(
            "replication group {} belongs to Global Datastore {other}, not <prefix>-{suffix}",
            group.id
        ),
    )
}

fn wait_for_group_state(group: &ReplicationGroup, primary: bool) -> CachePlan {
    let status = &group.status;
    let (reason, poll) = match status {
        ReplicationGroupStatus::Creating if primary => (reason::CREATING, requeue::LONG_OPERATION),
        ReplicationGroupStatus::Creating => (reason::JOINING, requeue::LONG_OPERATION),
        ReplicationGroupStatus::Deleting => (reason::DELETING, requeue::SHORT_OPERATION),
        ReplicationGroupStatus::Modifying | ReplicationGroupStatus::Snapshotting => {
            (reason::REPLICATION_GROUP_BUSY, requeue::SHORT_OPERATION)
        }
        // `create-failed`, `incompatible-network`, … need a human or AWS,
        // but they are not the spec's fault: keep polling.
        _ => (
            reason::REPLICATION_GROUP_UNHEALTHY,
            requeue::NEEDS_ATTENTION,
        ),
    };
    wait(
        reason,
        poll,
        format!("replication group {} is {status}", group.id),
    )
}

fn wait_for_membership(
    group: &ReplicationGroup,
    member: &GlobalReplicationGroupMember,
) -> Option<CachePlan> {
    match &member.status {
        GlobalMemberStatus::Associated => None,
        GlobalMemberStatus::Associating => Some(wait(
            reason::JOINING,
            requeue::LONG_OPERATION,
            format!("replication group {} is associating", group.id),
        )),
        other => Some(wait(
            reason::REPLICATION_GROUP_BUSY,
            requeue::SHORT_OPERATION,
            format!(
                "replication group {} is {other} with its Global Datastore",
                group.id
            ),
        )),
    }
}

/// Keeps `replicasPerShard`, one replica at a time, with Multi-AZ and
/// automatic failover on whenever there is a replica to fail over to.
/// Going to zero replicas turns failover off first: AWS refuses to remove
/// the last replica of a group that fails over automatically.
fn plan_replicas(spec: &ShopRegionSpec, group: &ReplicationGroup) -> Option<CacheAction> {
    let desired = spec.cache.replicas_per_shard;
    let current = group.replicas_per_shard();
    let change = |to| CacheAction::ChangeReplicas {
        replication_group_id: group.id.clone(),
        from: current,
        to,
    };
    if current < desired {
        return Some(change(current + 1));
    }
    if current > desired {
        if current == 1 && group.automatic_failover_on() {
            return Some(configure_failover(group, false));
        }
        return Some(change(current - 1));
    }
    let wanted = desired >= 1;
    (group.automatic_failover_on() != wanted || group.multi_az != wanted)
        .then(|| configure_failover(group, wanted))
}

fn configure_failover(group: &ReplicationGroup, on: bool) -> CacheAction {
    CacheAction::ConfigureFailover {
        request: ModifyReplicationGroupRequest {
            replication_group_id: group.id.clone(),
            automatic_failover_enabled: Some(on),
            multi_az_enabled: Some(on),
            ..ModifyReplicationGroupRequest::default()
        },
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::SecretKeyRef;
    use crate::api::fixtures::acme;
    use crate::cloud::elasticache::port::{
        AutomaticFailoverStatus, Endpoint, GlobalReplicationGroupInfo, NodeGroup, NodeGroupMember,
        NodeRole,
    };

    pub(crate) const PREFIX: &str = "ldgnf";

    pub(crate) fn group(spec: &ShopRegionSpec, status: ReplicationGroupStatus) -> ReplicationGroup {
        let id = replication_group_id(spec);
        let region = &spec.region;
        let endpoint = |kind: &str| Endpoint {
            address: format!("{kind}.{id}.x.{region}.cache.amazonaws.com"),
            port: 6379,
        };
        ReplicationGroup {
            arn: format!("arn:aws:elasticache:{region}:123456789012:replicationgroup:{id}"),
            description: description(spec),
            status: status.clone(),
            engine: "redis".into(),
            cache_node_type: "cache.r6g.large".into(),
            cluster_enabled: false,
            node_groups: vec![NodeGroup {
                id: "0001".into(),
                status,
                primary_endpoint: Some(endpoint("master")),
                reader_endpoint: Some(endpoint("replica")),
                members: (1..=2)
                    .map(|n| NodeGroupMember {
                        cache_cluster_id: format!("{id}-00{n}"),
                        current_role: Some(if n == 1 {
                            NodeRole::Primary
                        } else {
                            NodeRole::Replica
                        }),
                    })
                    .collect(),
            }],
            configuration_endpoint: None,
            automatic_failover: AutomaticFailoverStatus::Enabled,
            multi_az: true,
            auth_token_enabled: false,
            transit_encryption_enabled: true,
            at_rest_encryption_enabled: true,
            global_replication_group: None,
            created_at: None,
            id,
        }
    }

    /// `group` as a member of the shop's Global Datastore.
    pub(crate) fn member_group(
        spec: &ShopRegionSpec,
        status: ReplicationGroupStatus,
        primary: bool,
    ) -> ReplicationGroup {
        let mut g = group(spec, status);
        g.global_replication_group = Some(GlobalReplicationGroupInfo {
            global_replication_group_id: format!("{PREFIX}-acme"),
            is_primary: primary,
        });
        g
    }

    /// The shop's Global Datastore with `primary` and associated `secondaries`.
    pub(crate) fn global(
        status: GlobalReplicationGroupStatus,
        primary: Option<&str>,
        secondaries: &[&str],
    ) -> GlobalReplicationGroup {
        let members = primary
            .iter()
            .map(|r| (*r, true))
            .chain(secondaries.iter().map(|r| (*r, false)))
            .map(|(region, is_primary)| GlobalReplicationGroupMember {
                replication_group_id: format!("acme-{region}"),
                region: region.into(),
                is_primary,
                status: GlobalMemberStatus::Associated,
                automatic_failover: AutomaticFailoverStatus::Enabled,
            })
            .collect();
        GlobalReplicationGroup {
            id: format!("{PREFIX}-acme"),
            arn: format!("arn:aws:elasticache::123456789012:globalreplicationgroup:{PREFIX}-acme"),
            description: None,
            status,
            cache_node_type: "cache.r6g.large".into(),
            engine: "redis".into(),
            engine_version: "7.1".into(),
            cluster_enabled: false,
            num_node_groups: 1,
            auth_token_enabled: false,
            transit_encryption_enabled: true,
            at_rest_encryption_enabled: true,
            members,
        }
    }

    fn run_with(
        spec: &ShopRegionSpec,
        auth: &CacheAuth,
        global: Option<&GlobalReplicationGroup>,
        group: Option<&ReplicationGroup>,
        tags: &Tags,
    ) -> CachePlan {
        plan(&CachePlanInput {
            spec,
            auth,
            global,
            replication_group: group,
            tags,
            security_groups: None,
            recorded_auth: None,
            rolled_auth: None,
        })
    }

    fn run(
        spec: &ShopRegionSpec,
        global: Option<&GlobalReplicationGroup>,
        group: Option<&ReplicationGroup>,
    ) -> CachePlan {
        let tags = if group.is_some() {
            resource_tags(spec)
        } else {
            Tags::new()
        };
        run_with(spec, &CacheAuth::Disabled, global, group, &tags)
    }

    fn only_step(plan: CachePlan) -> CacheAction {
        match plan {
            CachePlan::Steps(mut steps) if steps.len() == 1 => steps.remove(0),
            other => panic!("expected one step, got {other:?}"),
        }
    }

    fn wait_reason(plan: CachePlan) -> &'static str {
        match only_step(plan) {
            CacheAction::Wait { reason, .. } => reason,
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    fn terminal(plan: CachePlan) -> SpecError {
        match plan {
            CachePlan::Terminal(e) => e,
            other => panic!("expected a terminal error, got {other:?}"),
        }
    }

    fn with_auth(region: &str) -> ShopRegionSpec {
        let mut spec = acme(region);
        spec.cache.auth_secret_ref = Some(SecretKeyRef {
            name: "acme-redis-auth".into(),
            key: "token".into(),
        });
        spec
    }

    fn token() -> CacheAuth {
        CacheAuth::Token(AuthToken::new("s3cret-Token-0123456789"))
    }

    /// us-east-1, primary of a Global Datastore with eu-west-1 as secondary.
    fn converged_primary() -> (ShopRegionSpec, GlobalReplicationGroup, ReplicationGroup) {
        let spec = acme("us-east-1");
        (
            spec.clone(),
            global(
                GlobalReplicationGroupStatus::Available,
                Some("us-east-1"),
                &["eu-west-1"],
            ),
            member_group(&spec, ReplicationGroupStatus::Available, true),
        )
    }

    #[test]
    fn the_first_region_creates_a_tagged_encrypted_multi_az_primary() {
        let spec = acme("us-east-1");
        let CacheAction::CreatePrimaryReplicationGroup { request } =
            only_step(run(&spec, None, None))
        else {
            panic!("expected CreatePrimaryReplicationGroup");
        };
        assert_eq!(request.replication_group_id, "acme-us-east-1");
        assert_eq!(request.global_replication_group_id, None);
        assert_eq!(request.engine.as_deref(), Some("redis"));
        assert_eq!(request.cache_node_type.as_deref(), Some("cache.r6g.large"));
        assert_eq!(request.num_node_groups, Some(1));
        assert_eq!(request.cluster_mode_enabled, Some(false));
        assert_eq!(request.replicas_per_node_group, 1);
        assert_eq!(request.automatic_failover_enabled, Some(true));
        assert_eq!(request.multi_az_enabled, Some(true));
        assert_eq!(request.transit_encryption_enabled, Some(true));
        assert_eq!(request.at_rest_encryption_enabled, Some(true));
        assert_eq!(request.auth_token, None);
        assert_eq!(request.tags, resource_tags(&spec));
        assert_eq!(
            request.tags.get("shopfleet.io/managed-by"),
            Some("shopfleet")
        );
    }

    #[test]
    fn several_shards_turn_cluster_mode_on() {
        let mut spec = acme("us-east-1");
        spec.cache.shards = 3;
        spec.cache.replicas_per_shard = 2;
        let CacheAction::CreatePrimaryReplicationGroup { request } =
            only_step(run(&spec, None, None))
        else {
            panic!("expected CreatePrimaryReplicationGroup");
        };
        assert_eq!(request.num_node_groups, Some(3));
        assert_eq!(request.cluster_mode_enabled, Some(true));
        assert_eq!(request.replicas_per_node_group, 2);
    }

    #[test]
    fn without_replicas_the_primary_is_created_without_automatic_failover() {
        let mut spec = acme("us-east-1");
        spec.cache.replicas_per_shard = 0;
        let CacheAction::CreatePrimaryReplicationGroup { request } =
            only_step(run(&spec, None, None))
        else {
            panic!("expected CreatePrimaryReplicationGroup");
        };
        assert_eq!(request.automatic_failover_enabled, Some(false));
        assert_eq!(request.multi_az_enabled, Some(false));
    }

    #[test]
    fn the_auth_token_goes_into_the_create_request_but_never_into_its_description() {
        let spec = with_auth("us-east-1");
        let action = only_step(run_with(&spec, &token(), None, None, &Tags::new()));
        let CacheAction::CreatePrimaryReplicationGroup { request } = &action else {
            panic!("expected CreatePrimaryReplicationGroup");
        };
        assert_eq!(
            request.auth_token.as_ref().map(AuthToken::expose),
            Some("s3cret-Token-0123456789")
        );
        let shown = format!("{} {action:?}", action.describe());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("Redis AUTH"), "{shown}");
    }

    #[test]
    fn a_missing_auth_secret_waits_and_says_so_before_anything_is_created() {
        let missing = CacheAuth::Unavailable {
            reason: reason::AUTH_SECRET_MISSING,
            message: "Secret shop/acme-redis-auth does not exist".into(),
        };
        for region in ["us-east-1", "eu-west-1"] {
            let spec = with_auth(region);
            let CacheAction::Wait {
                reason, message, ..
            } = only_step(run_with(&spec, &missing, None, None, &Tags::new()))
            else {
                panic!("expected a wait");
            };
            assert_eq!(reason, reason::AUTH_SECRET_MISSING, "{region}");
            assert!(message.contains("acme-redis-auth"));
        }
    }

    #[test]
    fn a_spec_that_can_never_join_is_terminal_before_a_missing_auth_secret_is_reported() {
        let spec = with_auth("eu-west-1");
        let g = global(
            GlobalReplicationGroupStatus::Available,
            Some("us-east-1"),
            &[],
        );
        let missing = CacheAuth::Unavailable {
            reason: reason::AUTH_SECRET_MISSING,
            message: "gone".into(),
        };
        assert_eq!(
            terminal(run_with(&spec, &missing, Some(&g), None, &Tags::new())).reason,
            reason::AUTH_MISMATCH
        );
        let mut with_auth_enabled = g.clone();
        with_auth_enabled.auth_token_enabled = true;
        assert_eq!(
            wait_reason(run_with(
                &spec,
                &missing,
                Some(&with_auth_enabled),
                None,
                &Tags::new()
            )),
            reason::AUTH_SECRET_MISSING
        );
    }

    #[test]
    fn an_existing_group_keeps_its_token_and_says_why_when_the_secret_is_gone() {
        // New order pods could not start without the token (their
        // environment takes it from the Secret): not Ready, but no call.
        let (mut spec, mut g, mut rg) = converged_primary();
        spec.cache.auth_secret_ref = with_auth("us-east-1").cache.auth_secret_ref;
        g.auth_token_enabled = true;
        rg.auth_token_enabled = true;
        let missing = CacheAuth::Unavailable {
            reason: reason::AUTH_SECRET_MISSING,
            message: "gone".into(),
        };
        assert_eq!(
            wait_reason(run_with(
                &spec,
                &missing,
                Some(&g),
                Some(&rg),
                &resource_tags(&spec)
            )),
            reason::AUTH_SECRET_MISSING
        );
    }

    #[test]
    fn changed_cache_security_groups_are_modified_in_place() {
        let (mut spec, g, rg) = converged_primary();
        spec.cache.network = Some(crate::api::CacheNetwork {
            subnet_group_name: "acme-cache".into(),
            security_group_ids: vec!["sg-0bbb0000000000002".into(), "sg-0aaa0000000000002".into()],
        });
        let tags = resource_tags(&spec);
        let running = vec!["sg-0aaa0000000000002".to_string()];
        let plan_with = |current: &[String]| {
            plan(&CachePlanInput {
                spec: &spec,
                auth: &CacheAuth::Disabled,
                global: Some(&g),
                replication_group: Some(&rg),
                tags: &tags,
                security_groups: Some(current),
                recorded_auth: None,
                rolled_auth: None,
            })
        };
        let CacheAction::ReconfigureSecurityGroups { request } = only_step(plan_with(&running))
        else {
            panic!("expected ReconfigureSecurityGroups");
        };
        assert_eq!(
            request.security_group_ids,
            Some(vec![
                "sg-0aaa0000000000002".into(),
                "sg-0bbb0000000000002".into()
            ])
        );
        let both = vec![
            "sg-0aaa0000000000002".to_string(),
            "sg-0bbb0000000000002".to_string(),
        ];
        assert!(matches!(plan_with(&both), CachePlan::Converged { .. }));
    }

    #[test]
    fn a_changed_token_is_rotated_then_set_once_the_pods_run_it() {
        let (mut spec, mut g, mut rg) = converged_primary();
        spec.cache.auth_secret_ref = with_auth("us-east-1").cache.auth_secret_ref;
        g.auth_token_enabled = true;
        rg.auth_token_enabled = true;
        let new = AuthToken::new("n3w-Token-9876543210");
        let new_fp = fingerprint(&rg.id, &new);
        let auth = CacheAuth::Token(new.clone());
        let recorded = AuthTokenStatus {
            applied: Some("0123456789abcdef".into()),
            rotating_to: None,
        };
        let tags = resource_tags(&spec);
        let plan_with = |recorded: &AuthTokenStatus, rolled: Option<&str>| {
            plan(&CachePlanInput {
                spec: &spec,
                auth: &auth,
                global: Some(&g),
                replication_group: Some(&rg),
                tags: &tags,
                security_groups: None,
                recorded_auth: Some(recorded),
                rolled_auth: rolled,
            })
        };
        let CacheAction::UpdateAuthToken { request, then } = only_step(plan_with(&recorded, None))
        else {
            panic!("expected a ROTATE");
        };
        assert_eq!(
            request.auth_token,
            Some((new.clone(), AuthTokenUpdateStrategy::Rotate))
        );
        assert_eq!(then.rotating_to.as_deref(), Some(new_fp.as_str()));
        let CacheAction::UpdateAuthToken { request, then } =
            only_step(plan_with(&then, Some(&new_fp)))
        else {
            panic!("expected a SET");
        };
        assert_eq!(
            request.auth_token,
            Some((new, AuthTokenUpdateStrategy::Set))
        );
        assert_eq!(then.applied.as_deref(), Some(new_fp.as_str()));
        assert_eq!(then.rotating_to, None);
    }

    #[test]
    fn other_regions_wait_for_the_primary_while_no_global_datastore_exists() {
        let spec = acme("eu-west-1");
        let CacheAction::Wait {
            reason, message, ..
        } = only_step(run(&spec, None, None))
        else {
            panic!("expected a wait");
        };
        assert_eq!(reason, reason::WAITING_FOR_PRIMARY);
        assert!(message.contains("us-east-1"), "{message}");
    }

    #[test]
    fn other_regions_wait_while_the_global_datastore_is_creating() {
        let spec = acme("eu-west-1");
        let g = global(
            GlobalReplicationGroupStatus::Creating,
            Some("us-east-1"),
            &[],
        );
        assert_eq!(
            wait_reason(run(&spec, Some(&g), None)),
            reason::WAITING_FOR_PRIMARY
        );
    }

    #[test]
    fn a_secondary_joins_inheriting_the_primarys_shape() {
        let spec = acme("eu-west-1");
        let g = global(
            GlobalReplicationGroupStatus::PrimaryOnly,
            Some("us-east-1"),
            &[],
        );
        let CacheAction::CreateSecondaryReplicationGroup { request } =
            only_step(run(&spec, Some(&g), None))
        else {
            panic!("expected CreateSecondaryReplicationGroup");
        };
        assert_eq!(request.replication_group_id, "acme-eu-west-1");
        assert_eq!(
            request.global_replication_group_id.as_deref(),
            Some("ldgnf-acme")
        );
        assert_eq!(request.engine, None);
        assert_eq!(request.cache_node_type, None);
        assert_eq!(request.num_node_groups, None);
        assert_eq!(request.cluster_mode_enabled, None);
        assert_eq!(request.replicas_per_node_group, 1);
        // Inherited from the primary: AWS's guide says not to pass them.
        assert_eq!(request.transit_encryption_enabled, None);
        assert_eq!(request.at_rest_encryption_enabled, None);
        assert_eq!(request.automatic_failover_enabled, None);
        assert_eq!(request.multi_az_enabled, None);
        assert_eq!(request.engine_version, None);
        assert_eq!(request.cache_parameter_group_name, None);
        assert_eq!(request.tags, resource_tags(&spec));
    }

    fn networked(region: &str) -> ShopRegionSpec {
        let mut spec = acme(region);
        spec.cache.network = Some(crate::api::CacheNetwork {
            subnet_group_name: "acme-cache".into(),
            security_group_ids: vec!["sg-0ccc0000000000000".into()],
        });
        spec.cache.engine_version = Some("7.1".into());
        spec.cache.parameter_group_name = Some("acme-redis7".into());
        spec.cache.kms_key_id = Some(format!("arn:aws:kms:{region}:123456789012:key/acme"));
        spec
    }

    #[test]
    fn the_primary_sends_version_parameter_group_network_and_key_a_secondary_only_what_is_regional()
    {
        let spec = networked("us-east-1");
        let CacheAction::CreatePrimaryReplicationGroup { request } =
            only_step(run(&spec, None, None))
        else {
            panic!("expected CreatePrimaryReplicationGroup");
        };
        assert_eq!(request.engine_version.as_deref(), Some("7.1"));
        assert_eq!(
            request.cache_parameter_group_name.as_deref(),
            Some("acme-redis7")
        );
        assert_eq!(
            request.cache_subnet_group_name.as_deref(),
            Some("acme-cache")
        );
        assert_eq!(request.security_group_ids, vec!["sg-0ccc0000000000000"]);
        assert!(
            request
                .kms_key_id
                .as_deref()
                .unwrap()
                .contains(":us-east-1:")
        );

        let spec = networked("eu-west-1");
        let g = global(
            GlobalReplicationGroupStatus::PrimaryOnly,
            Some("us-east-1"),
            &[],
        );
        let CacheAction::CreateSecondaryReplicationGroup { request } =
            only_step(run(&spec, Some(&g), None))
        else {
            panic!("expected CreateSecondaryReplicationGroup");
        };
        assert_eq!(request.engine_version, None);
        assert_eq!(request.cache_parameter_group_name, None);
        assert_eq!(
            request.cache_subnet_group_name.as_deref(),
            Some("acme-cache")
        );
        assert_eq!(request.security_group_ids, vec!["sg-0ccc0000000000000"]);
        assert!(
            request
                .kms_key_id
                .as_deref()
                .unwrap()
                .contains(":eu-west-1:")
        );
    }

    #[test]
    fn a_cache_kms_key_of_another_region_is_a_terminal_error() {
        let mut spec = networked("eu-west-1");
        spec.cache.kms_key_id = Some("arn:aws:kms:us-east-1:123456789012:key/acme".into());
        assert_eq!(
            terminal(run(&spec, None, None)).reason,
            reason::KMS_KEY_IN_ANOTHER_REGION
        );
    }

    #[test]
    fn the_first_region_joins_as_a_secondary_when_another_region_is_primary() {
        let spec = acme("us-east-1");
        let g = global(
            GlobalReplicationGroupStatus::Available,
            Some("eu-west-1"),
            &["ap-northeast-1"],
        );
        assert!(matches!(
            only_step(run(&spec, Some(&g), None)),
            CacheAction::CreateSecondaryReplicationGroup { .. }
        ));
    }

    #[test]
    fn a_secondary_with_auth_sends_the_token() {
        let spec = with_auth("eu-west-1");
        let mut g = global(
            GlobalReplicationGroupStatus::Available,
            Some("us-east-1"),
            &[],
        );
        g.auth_token_enabled = true;
        let CacheAction::CreateSecondaryReplicationGroup { request } =
            only_step(run_with(&spec, &token(), Some(&g), None, &Tags::new()))
        else {
            panic!("expected CreateSecondaryReplicationGroup");
        };
        assert!(request.auth_token.is_some());
    }

    #[test]
    fn a_secondary_whose_spec_differs_from_the_global_datastore_is_terminal_before_any_call() {
        let g = global(
            GlobalReplicationGroupStatus::Available,
            Some("us-east-1"),
            &[],
        );
        let mut node = acme("eu-west-1");
        node.cache.node_type = "cache.r6g.xlarge".into();
        let e = terminal(run(&node, Some(&g), None));
        assert_eq!(
            (e.reason, e.field.as_str()),
            (reason::NODE_TYPE_MISMATCH, "spec.cache.nodeType")
        );
        let mut shards = acme("eu-west-1");
        shards.cache.shards = 2;
        assert_eq!(
            terminal(run(&shards, Some(&g), None)).reason,
            reason::SHARD_COUNT_MISMATCH
        );
        let mut transit = acme("eu-west-1");
        transit.cache.transit_encryption = false;
        let e = terminal(run(&transit, Some(&g), None));
        assert_eq!(
            (e.reason, e.field.as_str()),
            (reason::ENCRYPTION_MISMATCH, "spec.cache.transitEncryption")
        );
        let mut at_rest = acme("eu-west-1");
        at_rest.cache.at_rest_encryption = false;
        assert_eq!(
            terminal(run(&at_rest, Some(&g), None)).field,
            "spec.cache.atRestEncryption"
        );
        let auth = with_auth("eu-west-1");
        assert_eq!(
            terminal(run_with(&auth, &token(), Some(&g), None, &Tags::new())).reason,
            reason::AUTH_MISMATCH
        );
    }

    #[test]
    fn node_types_are_compared_normalised() {
        let mut spec = acme("eu-west-1");
        spec.cache.node_type = "cache.R6G.large".into();
        let g = global(
            GlobalReplicationGroupStatus::Available,
            Some("us-east-1"),
            &[],
        );
        assert!(matches!(
            only_step(run(&spec, Some(&g), None)),
            CacheAction::CreateSecondaryReplicationGroup { .. }
        ));
        let (mut spec, g, rg) = converged_primary();
        spec.cache.node_type = " cache.r6g.LARGE".into();
        assert_eq!(
            run(&spec, Some(&g), Some(&rg)),
            CachePlan::Converged { notes: vec![] }
        );
    }

    #[test]
    fn a_node_type_global_datastores_do_not_support_is_terminal_up_front() {
        let mut spec = acme("us-east-1");
        spec.cache.node_type = "cache.t3.medium".into();
        let e = terminal(run(&spec, None, None));
        assert_eq!(e.reason, reason::UNSUPPORTED_NODE_TYPE);
        assert_eq!(e.field, "spec.cache.nodeType");
    }

    #[test]
    fn a_fourth_region_is_terminal_as_a_global_datastore_holds_three() {
        let mut spec = acme("eu-central-1");
        spec.failover.order.push("eu-central-1".into());
        let e = terminal(run(&spec, None, None));
        assert_eq!(e.reason, reason::TOO_MANY_REGIONS);
        assert!(e.message.contains("number 4"), "{}", e.message);
    }

    #[test]
    fn a_member_listed_but_not_yet_described_is_joining() {
        let spec = acme("eu-west-1");
        let mut g = global(
            GlobalReplicationGroupStatus::Available,
            Some("us-east-1"),
            &["eu-west-1"],
        );
        g.members[1].status = GlobalMemberStatus::Associating;
        assert_eq!(wait_reason(run(&spec, Some(&g), None)), reason::JOINING);
    }

    #[test]
    fn another_member_in_the_region_is_terminal() {
        let spec = acme("eu-west-1");
        let mut g = global(
            GlobalReplicationGroupStatus::Available,
            Some("us-east-1"),
            &["eu-west-1"],
        );
        g.members[1].replication_group_id = "legacy-cache".into();
        let e = terminal(run(&spec, Some(&g), None));
        assert_eq!(e.reason, reason::ANOTHER_MEMBER_IN_REGION);
        assert!(e.message.contains("legacy-cache"));
        g.members[1].status = GlobalMemberStatus::Disassociating;
        assert!(matches!(
            only_step(run(&spec, Some(&g), None)),
            CacheAction::CreateSecondaryReplicationGroup { .. }
        ));
    }

    #[test]
    fn the_primary_creating_waits_with_reason_creating() {
        let spec = acme("us-east-1");
        let rg = group(&spec, ReplicationGroupStatus::Creating);
        assert_eq!(wait_reason(run(&spec, None, Some(&rg))), reason::CREATING);
    }

    #[test]
    fn an_available_primary_creates_the_global_datastore_from_itself() {
        let spec = acme("us-east-1");
        let rg = group(&spec, ReplicationGroupStatus::Available);
        let CacheAction::CreateGlobalDatastore { request } = only_step(run(&spec, None, Some(&rg)))
        else {
            panic!("expected CreateGlobalDatastore");
        };
        assert_eq!(request.suffix, "acme");
        assert_eq!(request.primary_replication_group_id, "acme-us-east-1");
        assert_eq!(request.tags, resource_tags(&spec));
        let mut named = spec.clone();
        named.cache.global_replication_group_suffix = Some("orders".into());
        let CacheAction::CreateGlobalDatastore { request } =
            only_step(run(&named, None, Some(&rg)))
        else {
            panic!("expected CreateGlobalDatastore");
        };
        assert_eq!(request.suffix, "orders");
    }

    #[test]
    fn the_primary_waits_while_its_global_datastore_is_creating() {
        let spec = acme("us-east-1");
        let g = global(
            GlobalReplicationGroupStatus::Creating,
            Some("us-east-1"),
            &[],
        );
        let rg = member_group(&spec, ReplicationGroupStatus::Available, true);
        assert_eq!(
            wait_reason(run(&spec, Some(&g), Some(&rg))),
            reason::CREATING_GLOBAL_DATASTORE
        );
    }

    #[test]
    fn a_creating_secondary_waits_with_reason_joining() {
        let spec = acme("eu-west-1");
        let mut g = global(
            GlobalReplicationGroupStatus::Available,
            Some("us-east-1"),
            &["eu-west-1"],
        );
        g.members[1].status = GlobalMemberStatus::Associating;
        let rg = member_group(&spec, ReplicationGroupStatus::Creating, false);
        assert_eq!(
            wait_reason(run(&spec, Some(&g), Some(&rg))),
            reason::JOINING
        );
        let available = member_group(&spec, ReplicationGroupStatus::Available, false);
        assert_eq!(
            wait_reason(run(&spec, Some(&g), Some(&available))),
            reason::JOINING,
            "available but still associating"
        );
    }

    #[test]
    fn a_converged_primary_and_secondary_plan_nothing() {
        let (spec, g, rg) = converged_primary();
        assert_eq!(
            run(&spec, Some(&g), Some(&rg)),
            CachePlan::Converged { notes: vec![] }
        );
        let eu = acme("eu-west-1");
        let rg = member_group(&eu, ReplicationGroupStatus::Available, false);
        assert_eq!(
            run(&eu, Some(&g), Some(&rg)),
            CachePlan::Converged { notes: vec![] }
        );
    }

    #[test]
    fn a_converged_primary_alone_in_its_global_datastore_plans_nothing() {
        let spec = acme("us-east-1");
        let g = global(
            GlobalReplicationGroupStatus::PrimaryOnly,
            Some("us-east-1"),
            &[],
        );
        let rg = member_group(&spec, ReplicationGroupStatus::Available, true);
        assert_eq!(
            run(&spec, Some(&g), Some(&rg)),
            CachePlan::Converged { notes: vec![] }
        );
    }

    #[test]
    fn aws_filled_fields_are_not_diffs() {
        // AWS fills endpoints, creation time, description, engine and
        // cluster mode; none of it was set by the user.
        let (spec, g, mut rg) = converged_primary();
        rg.description = "edited in the console".into();
        rg.engine = "valkey".into();
        rg.cluster_enabled = true;
        rg.configuration_endpoint = Some(Endpoint {
            address: "clustercfg.x".into(),
            port: 6379,
        });
        rg.created_at = Some(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        assert_eq!(
            run(&spec, Some(&g), Some(&rg)),
            CachePlan::Converged { notes: vec![] }
        );
    }

    #[test]
    fn a_busy_global_datastore_is_a_note_for_a_converged_region() {
        let (spec, mut g, rg) = converged_primary();
        g.status = GlobalReplicationGroupStatus::Modifying;
        let CachePlan::Converged { notes } = run(&spec, Some(&g), Some(&rg)) else {
            panic!("expected converged");
        };
        assert!(
            notes[0].contains(GlobalReplicationGroupStatus::Modifying.as_str()),
            "{notes:?}"
        );
    }

    #[test]
    fn replicas_are_added_one_at_a_time() {
        let (mut spec, g, rg) = converged_primary();
        spec.cache.replicas_per_shard = 3;
        assert_eq!(
            only_step(run(&spec, Some(&g), Some(&rg))),
            CacheAction::ChangeReplicas {
                replication_group_id: "acme-us-east-1".into(),
                from: 1,
                to: 2
            }
        );
    }

    #[test]
    fn replicas_are_removed_one_at_a_time() {
        let (mut spec, g, mut rg) = converged_primary();
        for n in 3..=4 {
            rg.node_groups[0].members.push(NodeGroupMember {
                cache_cluster_id: format!("acme-us-east-1-00{n}"),
                current_role: Some(NodeRole::Replica),
            });
        }
        spec.cache.replicas_per_shard = 1;
        assert_eq!(
            only_step(run(&spec, Some(&g), Some(&rg))),
            CacheAction::ChangeReplicas {
                replication_group_id: "acme-us-east-1".into(),
                from: 3,
                to: 2
            }
        );
    }

    #[test]
    fn the_last_replica_goes_only_after_automatic_failover_is_off() {
        let (mut spec, g, mut rg) = converged_primary();
        spec.cache.replicas_per_shard = 0;
        assert_eq!(
            only_step(run(&spec, Some(&g), Some(&rg))),
            CacheAction::ConfigureFailover {
                request: ModifyReplicationGroupRequest {
                    replication_group_id: "acme-us-east-1".into(),
                    automatic_failover_enabled: Some(false),
                    multi_az_enabled: Some(false),
                    ..Default::default()
                }
            }
        );
        rg.automatic_failover = AutomaticFailoverStatus::Disabled;
        rg.multi_az = false;
        assert_eq!(
            only_step(run(&spec, Some(&g), Some(&rg))),
            CacheAction::ChangeReplicas {
                replication_group_id: "acme-us-east-1".into(),
                from: 1,
                to: 0
            }
        );
        rg.node_groups[0].members.truncate(1);
        assert_eq!(
            run(&spec, Some(&g), Some(&rg)),
            CachePlan::Converged { notes: vec![] }
        );
    }

    #[test]
    fn automatic_failover_is_turned_on_once_a_replica_exists() {
        let (spec, g, mut rg) = converged_primary();
        rg.automatic_failover = AutomaticFailoverStatus::Disabled;
        rg.multi_az = false;
        let CacheAction::ConfigureFailover { request } = only_step(run(&spec, Some(&g), Some(&rg)))
        else {
            panic!("expected ConfigureFailover");
        };
        assert_eq!(request.automatic_failover_enabled, Some(true));
        assert_eq!(request.multi_az_enabled, Some(true));
        // From zero replicas, the replica comes first.
        rg.node_groups[0].members.truncate(1);
        assert!(matches!(
            only_step(run(&spec, Some(&g), Some(&rg))),
            CacheAction::ChangeReplicas { from: 0, to: 1, .. }
        ));
    }

    #[test]
    fn replica_changes_wait_while_the_global_datastore_is_busy() {
        let (mut spec, mut g, rg) = converged_primary();
        spec.cache.replicas_per_shard = 2;
        g.status = GlobalReplicationGroupStatus::Modifying;
        assert_eq!(
            wait_reason(run(&spec, Some(&g), Some(&rg))),
            reason::GLOBAL_DATASTORE_BUSY
        );
    }

    #[test]
    fn transient_group_states_wait_and_are_never_terminal() {
        let (spec, g, mut rg) = converged_primary();
        for (status, expected) in [
            (
                ReplicationGroupStatus::Modifying,
                reason::REPLICATION_GROUP_BUSY,
            ),
            (
                ReplicationGroupStatus::Snapshotting,
                reason::REPLICATION_GROUP_BUSY,
            ),
            (ReplicationGroupStatus::Deleting, reason::DELETING),
            (
                ReplicationGroupStatus::CreateFailed,
                reason::REPLICATION_GROUP_UNHEALTHY,
            ),
        ] {
            rg.status = status.clone();
            assert_eq!(
                wait_reason(run(&spec, Some(&g), Some(&rg))),
                expected,
                "{status}"
            );
        }
    }

    #[test]
    fn a_group_leaving_the_global_datastore_waits() {
        let (spec, mut g, rg) = converged_primary();
        g.members[0].status = GlobalMemberStatus::Disassociating;
        assert_eq!(
            wait_reason(run(&spec, Some(&g), Some(&rg))),
            reason::REPLICATION_GROUP_BUSY
        );
    }

    #[test]
    fn a_group_whose_shape_drifted_from_the_spec_is_terminal() {
        let (mut spec, g, rg) = converged_primary();
        spec.cache.node_type = "cache.r7g.large".into();
        let e = terminal(run(&spec, Some(&g), Some(&rg)));
        assert_eq!(e.reason, reason::NODE_TYPE_MISMATCH);
        assert!(e.message.contains("replication group acme-us-east-1"));
        let (mut spec, g, rg) = converged_primary();
        spec.cache.auth_secret_ref = with_auth("us-east-1").cache.auth_secret_ref;
        assert_eq!(
            terminal(run_with(
                &spec,
                &token(),
                Some(&g),
                Some(&rg),
                &resource_tags(&spec)
            ))
            .reason,
            reason::AUTH_MISMATCH
        );
    }

    #[test]
    fn untagged_group_with_adopt_is_tagged_not_recreated() {
        let (mut spec, g, rg) = converged_primary();
        spec.cache.adopt = true;
        let foreign = Tags::from([("team".to_string(), "payments".to_string())]);
        assert_eq!(
            only_step(run_with(
                &spec,
                &CacheAuth::Disabled,
                Some(&g),
                Some(&rg),
                &foreign
            )),
            CacheAction::TagForAdoption {
                resource_arn: rg.arn.clone(),
                tags: resource_tags(&spec)
            }
        );
    }

    #[test]
    fn untagged_group_without_adopt_requires_adoption() {
        let (spec, g, rg) = converged_primary();
        let e = terminal(run_with(
            &spec,
            &CacheAuth::Disabled,
            Some(&g),
            Some(&rg),
            &Tags::new(),
        ));
        assert_eq!(e.reason, reason::ADOPTION_REQUIRED);
        assert_eq!(e.field, "spec.cache.adopt");
    }

    #[test]
    fn a_group_tagged_for_another_shop_is_never_adopted() {
        let (mut spec, g, rg) = converged_primary();
        spec.cache.adopt = true;
        let mut tags = resource_tags(&spec);
        tags.insert(crate::cloud::tags::SHOP.into(), "globex".into());
        assert_eq!(
            terminal(run_with(
                &spec,
                &CacheAuth::Disabled,
                Some(&g),
                Some(&rg),
                &tags
            ))
            .reason,
            reason::OWNED_BY_ANOTHER_SHOP
        );
    }

    #[test]
    fn a_standalone_group_beside_the_global_datastore_is_terminal() {
        let spec = acme("eu-west-1");
        let g = global(
            GlobalReplicationGroupStatus::Available,
            Some("us-east-1"),
            &[],
        );
        let rg = group(&spec, ReplicationGroupStatus::Available);
        assert_eq!(
            terminal(run(&spec, Some(&g), Some(&rg))).reason,
            reason::OUTSIDE_GLOBAL_DATASTORE
        );
    }

    #[test]
    fn a_group_in_another_global_datastore_is_terminal() {
        let spec = acme("eu-west-1");
        let mut rg = member_group(&spec, ReplicationGroupStatus::Available, false);
        rg.global_replication_group = Some(GlobalReplicationGroupInfo {
            global_replication_group_id: "gxeiz-legacy".into(),
            is_primary: false,
        });
        assert_eq!(
            terminal(run(&spec, None, Some(&rg))).reason,
            reason::IN_ANOTHER_GLOBAL_DATASTORE
        );
        let g = global(
            GlobalReplicationGroupStatus::Available,
            Some("us-east-1"),
            &[],
        );
        assert_eq!(
            terminal(run(&spec, Some(&g), Some(&rg))).reason,
            reason::IN_ANOTHER_GLOBAL_DATASTORE
        );
    }

    #[test]
    fn a_group_naming_the_global_datastore_before_its_member_list_does_is_joining() {
        let spec = acme("eu-west-1");
        let g = global(
            GlobalReplicationGroupStatus::Available,
            Some("us-east-1"),
            &[],
        );
        let rg = member_group(&spec, ReplicationGroupStatus::Available, false);
        assert_eq!(
            wait_reason(run(&spec, Some(&g), Some(&rg))),
            reason::JOINING
        );
    }

    #[test]
    fn a_member_whose_global_datastore_is_not_visible_yet_waits() {
        let spec = acme("eu-west-1");
        let rg = member_group(&spec, ReplicationGroupStatus::Available, false);
        assert_eq!(
            wait_reason(run(&spec, None, Some(&rg))),
            reason::WAITING_FOR_PRIMARY
        );
    }

    #[test]
    fn a_standalone_group_in_a_later_region_waits_for_the_primary() {
        let spec = acme("eu-west-1");
        let rg = group(&spec, ReplicationGroupStatus::Available);
        assert_eq!(
            wait_reason(run(&spec, None, Some(&rg))),
            reason::WAITING_FOR_PRIMARY
        );
    }
}
